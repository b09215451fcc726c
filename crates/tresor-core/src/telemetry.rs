//! Metrics with Vault's names (issue 20), rendered by `sys/metrics` in Prometheus' text format
//! or in Vault's JSON form.
//!
//! Why not the `metrics` crate with its Prometheus exporter: every name here is known when the
//! code is written, or is known when a mount is created, so a metric is a `&'static` value the
//! request path reaches without looking anything up in a shared map. Recording is a handful of
//! relaxed atomic additions on that value: no lock, no allocation, no registry lookup. The
//! exporter would add a keyed registry (sharded locks), a summary type whose quantiles need a
//! lock on every update, and two crates, for the same output.
//!
//! * A [`Timer`] is a log-linear histogram of atomic buckets (16 per power of two, so a
//!   quantile is within about 3% of the true value), with a count and a sum. It is rendered as
//!   a Prometheus summary in milliseconds with the quantiles 0.5, 0.9 and 0.99 over the recent
//!   window (10 to 20 seconds, as Vault's summaries cover their last 10 seconds; `NaN` when the
//!   window saw nothing), and cumulative `_sum` and `_count`. Optionally also as a Prometheus
//!   histogram (`telemetry { prometheus_histograms = true }`), which, unlike a summary, can be
//!   aggregated across servers.
//! * A [`Counter`] counts; a [`Gauge`] holds the last value set.
//! * Usage gauges (token, lease, entity and KV secret counts) are computed from storage when
//!   scraped, at most once per `usage_gauge_period`.
//!
//! Metrics are process-wide, as Vault's are: one server is one process.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Map, Value, json};

/// Buckets per timer: values in microseconds, exact below 16 µs, then 16 buckets per power of
/// two up to 2^43 µs (about 100 days).
const SUB: u32 = 16;
const NB: usize = 16 + 40 * SUB as usize;
/// How long a summary's quantiles look back (at least; at most twice as long).
const WINDOW: Duration = Duration::from_secs(10);

static START: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_secs() -> u64 {
    START.elapsed().as_secs()
}

fn bucket_of(us: u64) -> usize {
    if us < SUB as u64 {
        return us as usize;
    }
    let e = 63 - us.leading_zeros(); // >= 4
    let sub = ((us >> (e - 4)) & (SUB as u64 - 1)) as usize;
    (((e - 3) as usize) * SUB as usize + sub).min(NB - 1)
}

/// The lower bound and width of a bucket, in microseconds.
fn bucket_range(i: usize) -> (f64, f64) {
    if i < SUB as usize {
        return (i as f64, 1.0);
    }
    let e = (i / SUB as usize) as u32 + 3;
    let sub = (i % SUB as usize) as u64;
    let width = 1u64 << (e - 4);
    (((SUB as u64 + sub) * width) as f64, width as f64)
}

/// Stripes per timer: each thread records into one (chosen round-robin when the thread first
/// records), so two cores recording at once do not fight over the same cache lines; a scrape
/// adds the stripes up.
const STRIPES: usize = 4;

/// One stripe of a timer, on cache lines of its own.
#[repr(align(128))]
struct Stripe {
    buckets: [AtomicU64; NB],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Stripe {
    const fn new() -> Self {
        Stripe {
            buckets: [const { AtomicU64::new(0) }; NB],
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }
}

/// This thread's stripe.
fn stripe_index() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local! {
        static MINE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    MINE.with(|m| *m)
}

/// A latency histogram. Recording is lock-free and, across threads, mostly contention-free.
pub struct Timer {
    stripes: [Stripe; STRIPES],
    last: AtomicU64,
}

impl Default for Timer {
    fn default() -> Self {
        Self::new()
    }
}

impl Timer {
    pub const fn new() -> Self {
        Timer {
            stripes: [const { Stripe::new() }; STRIPES],
            last: AtomicU64::new(0),
        }
    }

    pub fn record(&self, d: Duration) {
        self.record_at(d, now_secs());
    }

    fn record_at(&self, d: Duration, now: u64) {
        if !enabled() {
            return;
        }
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        let s = &self.stripes[stripe_index()];
        s.buckets[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
        s.count.fetch_add(1, Ordering::Relaxed);
        s.sum_us.fetch_add(us, Ordering::Relaxed);
        if self.last.load(Ordering::Relaxed) != now {
            self.last.store(now, Ordering::Relaxed);
        }
    }

    /// Records the time since `start` (one clock read for both the duration and the time of
    /// the sample).
    pub fn since(&self, start: Instant) {
        let now = Instant::now();
        self.record_at(
            now.saturating_duration_since(start),
            now.saturating_duration_since(*START).as_secs(),
        );
    }

    /// Times until the guard is dropped (however the function it guards returns).
    pub fn start(&'static self) -> TimerGuard {
        TimerGuard(self, Instant::now())
    }

    pub fn count(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.count.load(Ordering::Relaxed))
            .sum()
    }

    fn sum_us(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.sum_us.load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }

    fn snapshot(&self) -> Vec<u64> {
        (0..NB)
            .map(|i| {
                self.stripes
                    .iter()
                    .map(|s| s.buckets[i].load(Ordering::Relaxed))
                    .sum()
            })
            .collect()
    }
}

/// Records its timer's time when dropped.
pub struct TimerGuard(&'static Timer, Instant);

impl Drop for TimerGuard {
    fn drop(&mut self) {
        self.0.since(self.1);
    }
}

/// A monotonic counter.
#[derive(Default)]
pub struct Counter {
    v: AtomicU64,
    last: AtomicU64,
}

impl Counter {
    pub const fn new() -> Self {
        Counter {
            v: AtomicU64::new(0),
            last: AtomicU64::new(0),
        }
    }
    pub fn add(&self, n: u64) {
        if !enabled() {
            return;
        }
        self.v.fetch_add(n, Ordering::Relaxed);
        let now = now_secs();
        if self.last.load(Ordering::Relaxed) != now {
            self.last.store(now, Ordering::Relaxed);
        }
    }
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn get(&self) -> u64 {
        self.v.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (stored as the bits of an `f64`).
#[derive(Default)]
pub struct Gauge {
    bits: AtomicU64,
    last: AtomicU64,
}

impl Gauge {
    pub const fn new() -> Self {
        Gauge {
            bits: AtomicU64::new(0),
            last: AtomicU64::new(0),
        }
    }
    pub fn set(&self, v: f64) {
        self.bits.store(v.to_bits(), Ordering::Relaxed);
        self.last.store(now_secs(), Ordering::Relaxed);
    }
    pub fn get(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }
}

/// A gauge counted from the number of live guards (requests in flight).
#[derive(Default)]
pub struct Level(AtomicU64);

impl Level {
    pub const fn new() -> Self {
        Level(AtomicU64::new(0))
    }
    pub fn enter(&'static self) -> LevelGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        LevelGuard(self)
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub struct LevelGuard(&'static Level);

impl Drop for LevelGuard {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}

type Labels = Vec<(String, String)>;

enum Metric {
    Timer(&'static Timer),
    Counter(&'static Counter),
    Gauge(&'static Gauge),
}

/// Every registered metric by (dotted name, labels). Locked only to register (once per name)
/// and to render.
struct Registry {
    metrics: Mutex<BTreeMap<(String, Labels), Metric>>,
    /// Per timer: the bucket counts at the start of the previous and the current window.
    windows: Mutex<BTreeMap<(String, Labels), Windows>>,
}

struct Windows {
    older: (Instant, Vec<u64>),
    newer: (Instant, Vec<u64>),
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Registry {
    metrics: Mutex::new(BTreeMap::new()),
    windows: Mutex::new(BTreeMap::new()),
});

fn labels(l: &[(&str, &str)]) -> Labels {
    l.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The timer of a name (registered on first use; the same value ever after).
pub fn timer(name: &str, l: &[(&str, &str)]) -> &'static Timer {
    let key = (name.to_owned(), labels(l));
    let mut m = REGISTRY.metrics.lock();
    match m.get(&key) {
        Some(Metric::Timer(t)) => t,
        _ => {
            let t: &'static Timer = Box::leak(Box::new(Timer::new()));
            m.insert(key, Metric::Timer(t));
            t
        }
    }
}

pub fn counter(name: &str, l: &[(&str, &str)]) -> &'static Counter {
    let key = (name.to_owned(), labels(l));
    let mut m = REGISTRY.metrics.lock();
    match m.get(&key) {
        Some(Metric::Counter(c)) => c,
        _ => {
            let c: &'static Counter = Box::leak(Box::new(Counter::new()));
            m.insert(key, Metric::Counter(c));
            c
        }
    }
}

pub fn gauge(name: &str, l: &[(&str, &str)]) -> &'static Gauge {
    let key = (name.to_owned(), labels(l));
    let mut m = REGISTRY.metrics.lock();
    match m.get(&key) {
        Some(Metric::Gauge(g)) => g,
        _ => {
            let g: &'static Gauge = Box::leak(Box::new(Gauge::new()));
            m.insert(key, Metric::Gauge(g));
            g
        }
    }
}

/// The metrics the core records, each resolved once.
pub mod m {
    use super::*;

    macro_rules! timers {
        ($($id:ident => $name:literal),* $(,)?) => {
            $(pub static $id: LazyLock<&'static Timer> = LazyLock::new(|| timer($name, &[]));)*
        };
    }
    macro_rules! counters {
        ($($id:ident => $name:literal),* $(,)?) => {
            $(pub static $id: LazyLock<&'static Counter> = LazyLock::new(|| counter($name, &[]));)*
        };
    }
    timers! {
        HANDLE_REQUEST => "vault.core.handle_request",
        HANDLE_LOGIN_REQUEST => "vault.core.handle_login_request",
        CHECK_TOKEN => "vault.core.check_token",
        FETCH_ACL_AND_TOKEN => "vault.core.fetch_acl_and_token",
        TOKEN_CREATE => "vault.token.create",
        TOKEN_LOOKUP => "vault.token.lookup",
        TOKEN_REVOKE => "vault.token.revoke",
        TOKEN_REVOKE_TREE => "vault.token.revoke-tree",
        EXPIRE_REVOKE => "vault.expire.revoke",
        EXPIRE_RENEW => "vault.expire.renew",
        EXPIRE_REGISTER => "vault.expire.register",
        AUDIT_LOG_REQUEST => "vault.audit.log_request",
        AUDIT_LOG_RESPONSE => "vault.audit.log_response",
        BARRIER_GET => "vault.barrier.get",
        BARRIER_PUT => "vault.barrier.put",
        BARRIER_LIST => "vault.barrier.list",
        BARRIER_DELETE => "vault.barrier.delete",
        POLICY_GET => "vault.policy.get_policy",
    }
    counters! {
        AUDIT_LOG_REQUEST_FAILURE => "vault.audit.log_request_failure",
        AUDIT_LOG_RESPONSE_FAILURE => "vault.audit.log_response_failure",
        RATE_LIMIT_VIOLATION => "vault.quota.rate_limit.violation",
        LEASE_COUNT_VIOLATION => "vault.quota.lease_count.violation",
        CORE_UNSEALED_EVENTS => "vault.core.unseal",
        CORE_SEALED_EVENTS => "vault.core.seal",
    }
    /// `vault.core.in_flight_requests`, kept by the HTTP layer.
    pub static IN_FLIGHT: Level = Level::new();
}

/// The storage backend's timers (`vault.<kind>.get` ...), named after its type once.
pub struct StorageTimers {
    pub get: &'static Timer,
    pub put: &'static Timer,
    pub list: &'static Timer,
    pub delete: &'static Timer,
}

pub fn storage_timers(kind: &str) -> StorageTimers {
    StorageTimers {
        get: timer(&format!("vault.{kind}.get"), &[]),
        put: timer(&format!("vault.{kind}.put"), &[]),
        list: timer(&format!("vault.{kind}.list"), &[]),
        delete: timer(&format!("vault.{kind}.delete"), &[]),
    }
}

thread_local! {
    static ROUTES: std::cell::RefCell<std::collections::HashMap<Box<str>, [Option<&'static Timer>; 8]>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// `vault.route.<operation>.<mount>` (the mount with `/` as `-`, as Vault names it): a
/// per-thread cache in front of the registry, so the request path takes no lock.
pub fn route_timer(op: tresor_sdk::Operation, mount: &str) -> &'static Timer {
    let (i, name) = match op {
        tresor_sdk::Operation::Read => (0, "read"),
        tresor_sdk::Operation::Create => (1, "create"),
        tresor_sdk::Operation::Update => (2, "update"),
        tresor_sdk::Operation::Delete => (3, "delete"),
        tresor_sdk::Operation::List => (4, "list"),
        tresor_sdk::Operation::Patch => (5, "patch"),
        tresor_sdk::Operation::Help => (6, "help"),
    };
    ROUTES.with(|r| {
        let mut r = r.borrow_mut();
        if let Some(slots) = r.get(mount)
            && let Some(t) = slots[i]
        {
            return t;
        }
        let t = timer(
            &format!("vault.route.{name}.{}", mount.replace('/', "-")),
            &[],
        );
        r.entry(mount.into()).or_insert([None; 8])[i] = Some(t);
        t
    })
}

/// The `telemetry` stanza's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a metric that is no longer updated stays in the Prometheus output; zero turns
    /// the Prometheus format off (Vault's rule).
    pub prometheus_retention: Duration,
    pub disable_hostname: bool,
    /// How often the usage gauges (token, lease, entity, KV counts) are recomputed.
    pub usage_gauge_period: Duration,
    pub metrics_prefix: String,
    /// Beyond Vault: timers also as Prometheus histograms (`<name>_hist`).
    pub prometheus_histograms: bool,
    /// Recording at all (off only to measure what metrics cost).
    pub enabled: bool,
    pub hostname: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            prometheus_retention: Duration::from_secs(24 * 3600),
            disable_hostname: false,
            usage_gauge_period: Duration::from_secs(600),
            metrics_prefix: "vault".into(),
            prometheus_histograms: false,
            enabled: true,
            hostname: hostname(),
        }
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Installs the server's settings (once, at start-up).
pub fn configure(s: Settings) {
    ENABLED.store(s.enabled, Ordering::Relaxed);
    let _ = SETTINGS.set(s);
}

pub fn settings() -> Settings {
    SETTINGS.get().cloned().unwrap_or_default()
}

#[inline]
fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// One value of the output: a metric's dotted name, labels and what it holds.
pub struct Sample {
    pub name: String,
    pub labels: Labels,
    pub value: SampleValue,
}

pub enum SampleValue {
    Gauge(f64),
    Counter(u64),
    /// Quantiles (ms) of the window, cumulative count and sum (ms), the window's buckets.
    Summary {
        quantiles: [f64; 3],
        count: u64,
        sum_ms: f64,
        window: Vec<u64>,
        cumulative: Vec<u64>,
    },
}

pub const QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];

fn quantile(buckets: &[u64], q: f64) -> f64 {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return f64::NAN;
    }
    let rank = q * total as f64;
    let mut seen = 0u64;
    for (i, &n) in buckets.iter().enumerate() {
        if n == 0 {
            continue;
        }
        if (seen + n) as f64 >= rank {
            let (lo, width) = bucket_range(i);
            let within = ((rank - seen as f64) / n as f64).clamp(0.0, 1.0);
            return (lo + width * within) / 1000.0;
        }
        seen += n;
    }
    let (lo, width) = bucket_range(NB - 1);
    (lo + width) / 1000.0
}

/// Every registered metric as it is now, without those past the retention time.
pub fn collect(retention: Duration) -> Vec<Sample> {
    let now = Instant::now();
    let now_s = now_secs();
    let stale =
        |last: u64| retention > Duration::ZERO && now_s.saturating_sub(last) > retention.as_secs();
    let metrics = REGISTRY.metrics.lock();
    let mut windows = REGISTRY.windows.lock();
    let mut out = Vec::with_capacity(metrics.len());
    for ((name, labels), metric) in metrics.iter() {
        let value = match metric {
            Metric::Counter(c) => {
                if stale(c.last.load(Ordering::Relaxed)) {
                    continue;
                }
                SampleValue::Counter(c.get())
            }
            Metric::Gauge(g) => {
                if stale(g.last.load(Ordering::Relaxed)) {
                    continue;
                }
                SampleValue::Gauge(g.get())
            }
            Metric::Timer(t) => {
                if t.count() == 0 || stale(t.last.load(Ordering::Relaxed)) {
                    continue;
                }
                let current = t.snapshot();
                let w = windows
                    .entry((name.clone(), labels.clone()))
                    .or_insert_with(|| Windows {
                        older: (*START, vec![0; NB]),
                        newer: (now, current.clone()),
                    });
                if now.duration_since(w.newer.0) >= WINDOW {
                    w.older = std::mem::replace(&mut w.newer, (now, current.clone()));
                }
                let window: Vec<u64> = current
                    .iter()
                    .zip(&w.older.1)
                    .map(|(c, o)| c.saturating_sub(*o))
                    .collect();
                SampleValue::Summary {
                    quantiles: QUANTILES.map(|q| quantile(&window, q)),
                    count: t.count(),
                    sum_ms: t.sum_us() as f64 / 1000.0,
                    window,
                    cumulative: current,
                }
            }
        };
        out.push(Sample {
            name: name.clone(),
            labels: labels.clone(),
            value,
        });
    }
    out
}

/// The name a dotted metric is rendered under: the configured prefix for `vault`, and the
/// host name after it for gauges unless `disable_hostname` (go-metrics' rule, which Vault
/// follows).
fn display_name(s: &Settings, name: &str, gauge: bool) -> String {
    let rest = name.strip_prefix("vault.").unwrap_or(name);
    let host = if gauge && !s.disable_hostname && !s.hostname.is_empty() {
        format!("{}.", s.hostname)
    } else {
        String::new()
    };
    format!("{}.{host}{rest}", s.metrics_prefix)
}

/// Prometheus' rule for a metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn prometheus_name(dotted: &str) -> String {
    let mut out: String = dotted
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn label_name(k: &str) -> String {
    prometheus_name(k)
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn render_labels(l: &Labels, extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = l
        .iter()
        .map(|(k, v)| format!("{}=\"{}\"", label_name(k), escape_label(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// Histogram bucket bounds (ms) for `prometheus_histograms`.
const HIST_BOUNDS_MS: [f64; 14] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0, 5000.0,
];

/// The Prometheus text exposition (version 0.0.4) of the samples.
pub fn render_prometheus(s: &Settings, samples: &[Sample]) -> String {
    // Group by rendered family name; a family has one type.
    let mut families: BTreeMap<String, (&'static str, Vec<String>)> = BTreeMap::new();
    for smp in samples {
        let gauge = matches!(smp.value, SampleValue::Gauge(_));
        let name = prometheus_name(&display_name(s, &smp.name, gauge));
        match &smp.value {
            SampleValue::Gauge(v) => {
                let f = families
                    .entry(name.clone())
                    .or_insert(("gauge", Vec::new()));
                if f.0 != "gauge" {
                    continue;
                }
                f.1.push(format!(
                    "{name}{} {}",
                    render_labels(&smp.labels, None),
                    fmt_f64(*v)
                ));
            }
            SampleValue::Counter(v) => {
                let f = families
                    .entry(name.clone())
                    .or_insert(("counter", Vec::new()));
                if f.0 != "counter" {
                    continue;
                }
                f.1.push(format!("{name}{} {v}", render_labels(&smp.labels, None)));
            }
            SampleValue::Summary {
                quantiles,
                count,
                sum_ms,
                cumulative,
                ..
            } => {
                let f = families
                    .entry(name.clone())
                    .or_insert(("summary", Vec::new()));
                if f.0 != "summary" {
                    continue;
                }
                for (q, v) in QUANTILES.iter().zip(quantiles) {
                    f.1.push(format!(
                        "{name}{} {}",
                        render_labels(&smp.labels, Some(("quantile", format!("{q}")))),
                        fmt_f64(*v)
                    ));
                }
                let l = render_labels(&smp.labels, None);
                f.1.push(format!("{name}_sum{l} {}", fmt_f64(*sum_ms)));
                f.1.push(format!("{name}_count{l} {count}"));
                if s.prometheus_histograms {
                    let hname = format!("{name}_hist");
                    let h = families
                        .entry(hname.clone())
                        .or_insert(("histogram", Vec::new()));
                    let mut acc = 0u64;
                    let mut idx = 0usize;
                    for bound in HIST_BOUNDS_MS {
                        while idx < NB {
                            let (lo, width) = bucket_range(idx);
                            if (lo + width) / 1000.0 > bound {
                                break;
                            }
                            acc += cumulative[idx];
                            idx += 1;
                        }
                        h.1.push(format!(
                            "{hname}_bucket{} {acc}",
                            render_labels(&smp.labels, Some(("le", format!("{bound}"))))
                        ));
                    }
                    h.1.push(format!(
                        "{hname}_bucket{} {count}",
                        render_labels(&smp.labels, Some(("le", "+Inf".into())))
                    ));
                    h.1.push(format!("{hname}_sum{l} {}", fmt_f64(*sum_ms)));
                    h.1.push(format!("{hname}_count{l} {count}"));
                }
            }
        }
    }
    let mut out = String::new();
    for (name, (kind, lines)) in families {
        out.push_str(&format!("# HELP {name} {name}\n# TYPE {name} {kind}\n"));
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}

fn approx_stats(buckets: &[u64]) -> (f64, f64, f64) {
    // min, max, stddev in ms, from bucket midpoints
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return (0.0, 0.0, 0.0);
    }
    let mid = |i: usize| {
        let (lo, w) = bucket_range(i);
        (lo + w / 2.0) / 1000.0
    };
    let min = buckets.iter().position(|n| *n > 0).map(mid).unwrap_or(0.0);
    let max = buckets.iter().rposition(|n| *n > 0).map(mid).unwrap_or(0.0);
    let mean: f64 = buckets
        .iter()
        .enumerate()
        .map(|(i, n)| mid(i) * *n as f64)
        .sum::<f64>()
        / total as f64;
    let var: f64 = buckets
        .iter()
        .enumerate()
        .map(|(i, n)| (mid(i) - mean).powi(2) * *n as f64)
        .sum::<f64>()
        / total as f64;
    (min, max, var.sqrt())
}

/// Vault's JSON form (go-metrics' in-memory sink display): `Timestamp`, `Gauges`, `Points`,
/// `Counters`, `Samples`.
pub fn render_json(s: &Settings, samples: &[Sample]) -> Value {
    let mut gauges = Vec::new();
    let mut counters = Vec::new();
    let mut timers = Vec::new();
    let label_map = |l: &Labels| {
        Value::Object(
            l.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect::<Map<_, _>>(),
        )
    };
    for smp in samples {
        match &smp.value {
            SampleValue::Gauge(v) => gauges.push(json!({
                "Name": display_name(s, &smp.name, true),
                "Value": if v.is_finite() { json!(v) } else { Value::Null },
                "Labels": label_map(&smp.labels),
            })),
            SampleValue::Counter(v) => counters.push(json!({
                "Name": display_name(s, &smp.name, false),
                "Count": v, "Rate": 0.0, "Sum": *v as f64, "Min": 1.0, "Max": 1.0, "Mean": 1.0, "Stddev": 0.0,
                "Labels": label_map(&smp.labels),
            })),
            SampleValue::Summary {
                count,
                sum_ms,
                cumulative,
                ..
            } => {
                let (min, max, stddev) = approx_stats(cumulative);
                timers.push(json!({
                    "Name": display_name(s, &smp.name, false),
                    "Count": count,
                    "Rate": 0.0,
                    "Sum": sum_ms,
                    "Min": min,
                    "Max": max,
                    "Mean": if *count > 0 { sum_ms / *count as f64 } else { 0.0 },
                    "Stddev": stddev,
                    "Labels": label_map(&smp.labels),
                }))
            }
        }
    }
    let ts = time::OffsetDateTime::now_utc();
    json!({
        "Timestamp": format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} +0000 UTC",
            ts.year(), u8::from(ts.month()), ts.day(), ts.hour(), ts.minute(), ts.second()
        ),
        "Gauges": gauges,
        "Points": [],
        "Counters": counters,
        "Samples": timers,
    })
}

/// Gauges computed when scraped: process memory, seal state, the usage counts.
pub struct Computed {
    pub samples: Vec<Sample>,
}

pub fn gauge_sample(name: &str, l: &[(&str, &str)], v: f64) -> Sample {
    Sample {
        name: name.to_owned(),
        labels: labels(l),
        value: SampleValue::Gauge(v),
    }
}

/// Process memory from `/proc/self/status` (bytes): `vault.runtime.sys_bytes` is the resident
/// set (Go's "memory obtained from the OS" has no closer equivalent), `vault.runtime.alloc_bytes`
/// the resident anonymous memory (the heap and stacks).
pub fn process_samples() -> Vec<Sample> {
    let mut out = Vec::new();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| {
        status.lines().find_map(|l| {
            l.strip_prefix(k)
                .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .map(|kb| kb * 1024.0)
        })
    };
    if let Some(rss) = field("VmRSS:") {
        out.push(gauge_sample("vault.runtime.sys_bytes", &[], rss));
    }
    if let Some(anon) = field("RssAnon:") {
        out.push(gauge_sample("vault.runtime.alloc_bytes", &[], anon));
    }
    if let Some(threads) = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|t| t.trim().parse::<f64>().ok())
    {
        out.push(gauge_sample("vault.runtime.num_threads", &[], threads));
    }
    out.push(gauge_sample(
        "vault.core.in_flight_requests",
        &[],
        m::IN_FLIGHT.get() as f64,
    ));
    out
}

/// The cached usage gauges and when they were computed.
/// When the usage gauges were computed, and their values.
pub(crate) type Usage = Option<(Instant, Arc<Vec<Sample>>)>;

pub(crate) static USAGE: LazyLock<Mutex<Usage>> = LazyLock::new(|| Mutex::new(None));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_tight() {
        let mut last = 0;
        for us in [
            0u64,
            1,
            15,
            16,
            17,
            31,
            32,
            100,
            1000,
            12345,
            1 << 30,
            u64::MAX,
        ] {
            let b = bucket_of(us);
            assert!(b >= last, "{us}");
            last = b;
            let (lo, w) = bucket_range(b);
            if us < (1 << 43) {
                assert!(
                    lo <= us as f64 && (us as f64) < lo + w,
                    "{us} in [{lo}, {})",
                    lo + w
                );
                assert!(w / lo.max(1.0) <= 1.0 / 16.0 + 1e-9 || us < 16, "{us}");
            }
        }
    }

    #[test]
    fn quantiles_track_the_data() {
        let t = Timer::new();
        for ms in 1..=100u64 {
            t.record(Duration::from_millis(ms));
        }
        let s = t.snapshot();
        for (q, want) in [(0.5, 50.0), (0.9, 90.0), (0.99, 99.0)] {
            let got = quantile(&s, q);
            assert!((got - want).abs() / want < 0.07, "q{q}: {got} vs {want}");
        }
        assert!(quantile(&[0; NB], 0.5).is_nan());
    }

    #[test]
    fn names_follow_prometheus_rules() {
        assert_eq!(
            prometheus_name("vault.route.read.secret-"),
            "vault_route_read_secret_"
        );
        assert_eq!(prometheus_name("9x.y"), "_9x_y");
        let s = Settings {
            disable_hostname: false,
            hostname: "h1".into(),
            metrics_prefix: "tresor".into(),
            ..Settings::default()
        };
        assert_eq!(
            display_name(&s, "vault.expire.num_leases", true),
            "tresor.h1.expire.num_leases"
        );
        assert_eq!(
            display_name(&s, "vault.core.handle_request", false),
            "tresor.core.handle_request"
        );
    }
}
