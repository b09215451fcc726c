//! The operations endpoints of the system backend (issue 20): `sys/metrics`, `sys/quotas/*`,
//! `sys/in-flight-req`, `sys/host-info`, `sys/loggers`, `sys/config/state/sanitized`,
//! `sys/version-history` and the authorization half of `sys/monitor` (the HTTP layer streams
//! the log once the pipeline has allowed and audited the request).

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value, json};
use tresor_sdk::framework::{Fields, Path};
use tresor_sdk::{LogicalError, Operation, RawResponse, Request, Response, Result, Storage as _};

use crate::core::Unsealed;
use crate::quotas::{LeaseCountQuota, QuotaConfig, RateLimitQuota};
use crate::system::{Sys, handles, le};
use crate::telemetry::{self, Sample, gauge_sample};

/// Where each version this server ran as was first unsealed (`sys/version-history`).
const VERSIONS: &str = "core/versions/";

/// Records the running version the first time it unseals (not on a HA standby).
pub(crate) async fn record_version(barrier: &crate::barrier::Barrier) {
    let key = format!("{VERSIONS}{}", crate::VERSION);
    if matches!(barrier.get(&key).await, Ok(Some(_))) {
        return;
    }
    let v = json!({
        "timestamp_installed": time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        "build_date": crate::BUILD_DATE,
    });
    if let Err(e) = barrier.put(&key, v.to_string().as_bytes()).await {
        tracing::warn!(error = %e, "could not record the version history");
    }
}

/// The usage gauges, recomputed at most once per `usage_gauge_period`.
async fn usage(u: &Unsealed) -> Arc<Vec<Sample>> {
    let period = telemetry::settings().usage_gauge_period;
    if let Some((at, s)) = telemetry::USAGE.lock().as_ref()
        && at.elapsed() < period
    {
        return s.clone();
    }
    let mut out = Vec::new();
    // Tokens: in total, by policy, by auth method and by creation TTL bucket.
    let mut total = 0u64;
    let mut by_policy = std::collections::BTreeMap::<String, u64>::new();
    let mut by_auth = std::collections::BTreeMap::<String, u64>::new();
    let mut by_ttl = std::collections::BTreeMap::<&'static str, u64>::new();
    if let Ok(ids) = u.tokens.view().list("id/").await {
        for id in ids {
            let Ok(Some(t)) = u.tokens.by_id_raw(&id).await else {
                continue;
            };
            total += 1;
            for p in &t.policies {
                *by_policy.entry(p.clone()).or_default() += 1;
            }
            let auth = t
                .path
                .strip_prefix("auth/")
                .and_then(|p| p.split('/').next())
                .unwrap_or("token");
            *by_auth.entry(auth.to_owned()).or_default() += 1;
            let ttl = t.ttl;
            let bucket = match ttl {
                0 => "+Inf",
                t if t <= 60 => "1m",
                t if t <= 600 => "10m",
                t if t <= 1200 => "20m",
                t if t <= 3600 => "1h",
                t if t <= 7200 => "2h",
                t if t <= 86400 => "1d",
                t if t <= 2 * 86400 => "2d",
                t if t <= 7 * 86400 => "7d",
                t if t <= 30 * 86400 => "30d",
                _ => "+Inf",
            };
            *by_ttl.entry(bucket).or_default() += 1;
        }
    }
    out.push(gauge_sample("vault.token.count", &[], total as f64));
    for (p, n) in by_policy {
        out.push(gauge_sample(
            "vault.token.count.by_policy",
            &[("policy", &p)],
            n as f64,
        ));
    }
    for (a, n) in by_auth {
        out.push(gauge_sample(
            "vault.token.count.by_auth",
            &[("auth_method", &a)],
            n as f64,
        ));
    }
    for (b, n) in by_ttl {
        out.push(gauge_sample(
            "vault.token.count.by_ttl",
            &[("creation_ttl", b)],
            n as f64,
        ));
    }
    if let Ok(leases) = u.expiration.all_under("", usize::MAX).await {
        out.push(gauge_sample(
            "vault.expire.num_leases",
            &[],
            leases.len() as f64,
        ));
    }
    out.push(gauge_sample(
        "vault.identity.entity.count",
        &[],
        u.identity.entities().len() as f64,
    ));
    // KV secrets per mount.
    for route in u.router().routes() {
        if route.entry.kind != "kv" && route.entry.kind != "generic" {
            continue;
        }
        let v2 = route.entry.options.get("version").map(String::as_str) == Some("2");
        let mut n = 0u64;
        // Tresor's KV layout (tresor-kv's store.rs): one `meta/<path>` record per v2 secret,
        // one `v1/<path>` per v1 secret.
        let mut stack = vec![if v2 { "meta/" } else { "v1/" }.to_owned()];
        while let Some(p) = stack.pop() {
            let Ok(children) = route.view.list(&p).await else {
                continue;
            };
            for c in children {
                if c.ends_with('/') {
                    stack.push(format!("{p}{c}"));
                } else {
                    n += 1;
                }
            }
        }
        out.push(gauge_sample(
            "vault.secret.kv.count",
            &[("mount_point", &route.path)],
            n as f64,
        ));
    }
    let s = Arc::new(out);
    *telemetry::USAGE.lock() = Some((Instant::now(), s.clone()));
    s
}

/// `sys/metrics` in `format` (`prometheus`, or `""` for Vault's JSON form) for a server in the
/// given state: `Err` for an unknown format, or Prometheus with a zero retention time (Vault's
/// rule).
pub(crate) async fn render_metrics(
    unsealed: Option<Arc<Unsealed>>,
    standby: bool,
    format: &str,
) -> std::result::Result<(String, String), String> {
    let settings = telemetry::settings();
    if format == "prometheus" && settings.prometheus_retention.is_zero() {
        return Err("prometheus is not enabled".into());
    }
    if !matches!(format, "" | "prometheus") {
        return Err(format!("metric response format {format:?} unknown"));
    }
    let mut samples = telemetry::collect(settings.prometheus_retention);
    samples.extend(telemetry::process_samples());
    samples.push(gauge_sample(
        "vault.core.unsealed",
        &[],
        if unsealed.is_some() { 1.0 } else { 0.0 },
    ));
    samples.push(gauge_sample(
        "vault.core.active",
        &[],
        if unsealed.is_some() && !standby {
            1.0
        } else {
            0.0
        },
    ));
    if let Some(u) = &unsealed {
        let usage = usage(u).await;
        for s in usage.iter() {
            if let telemetry::SampleValue::Gauge(v) = s.value {
                samples.push(Sample {
                    name: s.name.clone(),
                    labels: s.labels.clone(),
                    value: telemetry::SampleValue::Gauge(v),
                });
            }
        }
        let n = u.router().routes().len();
        samples.push(gauge_sample(
            "vault.core.mount_table.num_entries",
            &[],
            n as f64,
        ));
    }
    Ok(if format == "prometheus" {
        (
            "text/plain; version=0.0.4; charset=utf-8".into(),
            telemetry::render_prometheus(&settings, &samples),
        )
    } else {
        (
            "application/json".into(),
            telemetry::render_json(&settings, &samples).to_string(),
        )
    })
}

tresor_sdk::input! {
    /// `sys/metrics`.
    struct MetricsInput {
        format: Str, "prometheus for Prometheus' text format; empty for Vault's JSON form.";
    }
}

tresor_sdk::input! {
    /// `sys/quotas/rate-limit/:name`: each setting changes only when sent.
    struct RateLimitInput {
        name: Str, "The name of the quota.";
        path: OptStr, "Empty (every request), a mount (secret/), a path under a mount, or a glob with * (beyond Vault).";
        role: OptStr, "Login requests naming this role only (the path must be an auth method's).";
        rate: OptRaw, "Requests allowed per interval, per client address (a positive number).";
        interval: OptRaw, "The interval of the rate (default 1s).";
        block_interval: OptRaw, "How long a client that reached the limit is refused every request (default: none).";
        inheritable: OptBool, "Accepted for Vault's API (namespaces; Tresor has none).";
        burst: OptInt, "Beyond Vault: the most requests at once (default: rate).";
    }
}

tresor_sdk::input! {
    /// `sys/quotas/lease-count/:name`: each setting changes only when sent.
    struct LeaseCountInput {
        name: Str, "The name of the quota.";
        path: OptStr, "Empty (every lease), a mount, a path under a mount, or a glob.";
        role: OptStr, "Login requests naming this role only (the path must be an auth method's).";
        max_leases: OptInt, "The most leases that may exist under the path.";
        inheritable: OptBool, "Accepted for Vault's API (namespaces; Tresor has none).";
    }
}

tresor_sdk::input! {
    /// `sys/quotas/config`: each setting changes only when sent.
    struct QuotaConfigInput {
        rate_limit_exempt_paths: OptList, "Paths no rate limit applies to.";
        enable_rate_limit_audit_logging: OptBool, "Audit requests refused by a rate limit.";
        enable_rate_limit_response_headers: OptBool, "Send X-RateLimit-Limit, -Remaining, -Reset and Retry-After.";
    }
}

tresor_sdk::input! {
    /// `sys/loggers`.
    struct LoggersInput {
        level: Str, "trace, debug, info, warn or error.";
    }
}

tresor_sdk::input! {
    /// `sys/loggers/:name`.
    struct LoggerInput {
        name: Str, "The logger (core, audit, expiration, ...).";
        level: Str, "trace, debug, info, warn or error.";
    }
}

tresor_sdk::input! {
    /// `sys/monitor`.
    struct MonitorInput {
        log_level: Str, "The lowest level streamed (default info).";
        log_format: Str, "standard (default) or json.";
    }
}

async fn metrics(s: Arc<Sys>, req: Request, f: Fields) -> Result<Option<Response>> {
    let c = handles(&s);
    let mut format = f.input::<MetricsInput>().format;
    // Vault also answers Prometheus to an OpenMetrics Accept header.
    if format.is_empty()
        && req.headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("accept") && v.starts_with("application/openmetrics-text")
        })
    {
        format = "prometheus".into();
    }
    let (ct, body) = c.metrics(&format).await.map_err(LogicalError::invalid)?;
    Ok(Some(Response {
        raw: Some(RawResponse {
            headers: Vec::new(),
            status: 200,
            content_type: ct,
            body: body.into_bytes(),
        }),
        ..Default::default()
    }))
}

fn unsealed(s: &Sys) -> Result<Arc<Unsealed>> {
    handles(s).unsealed().map_err(le)
}

fn secs_field(v: Option<&Value>, name: &str) -> Result<Option<f64>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(v) => tresor_sdk::duration::from_json(v)
            .map(|d| Some(d.as_secs_f64()))
            .map_err(|e| LogicalError::invalid(format!("invalid {name}: {e}"))),
    }
}

/// A quota's role names logins, so its path must be an auth method's.
fn role_needs_auth_path(role: &str, path: &str) -> Result<()> {
    if !role.is_empty() && !path.starts_with("auth/") {
        return Err(LogicalError::invalid(
            "a quota with a role must be on an auth method's path (auth/<mount>/)",
        ));
    }
    Ok(())
}

/// Normalizes and checks a quota's path: empty, a mounted path, or a glob under a mount.
fn quota_path(u: &Unsealed, p: &str) -> Result<String> {
    let p = p.trim_start_matches('/').to_owned();
    if p.is_empty() {
        return Ok(p);
    }
    let fixed = p.split('*').next().unwrap_or_default();
    let router = u.router();
    let probe = if fixed.ends_with('/') || fixed.is_empty() {
        fixed.to_owned()
    } else {
        format!("{fixed}/")
    };
    if router.route(&probe).is_none() && router.route(fixed).is_none() {
        return Err(LogicalError::invalid(format!(
            "invalid mount path {p:?}: no mount serves it"
        )));
    }
    Ok(p)
}

async fn rate_read(s: Arc<Sys>, f: Fields) -> Result<Option<Response>> {
    let name = f.input::<RateLimitInput>().name;
    let Some(q) = unsealed(&s)?
        .quotas
        .rate_limits()
        .into_iter()
        .find(|q| q.name == name)
    else {
        return Ok(None);
    };
    let mut out = json!({
        "name": q.name,
        "type": "rate-limit",
        "path": q.path,
        "role": q.role,
        "rate": q.rate,
        "interval": whole_secs(q.interval),
        "block_interval": whole_secs(q.block_interval),
        "inheritable": q.inheritable,
    });
    // `burst` is Tresor's own setting: shown only on a quota that set it, so a quota written
    // with Vault's fields reads back with exactly Vault's fields.
    if let Some(b) = q.burst {
        out["burst"] = json!(b);
    }
    Ok(Some(Response::json(out)))
}

/// A number of seconds as Vault shows `interval` and `block_interval`: an integer (a
/// fractional setting, which only Tresor accepts, keeps its fraction).
fn whole_secs(secs: f64) -> Value {
    if secs.fract() == 0.0 && secs.abs() < 1e15 {
        json!(secs as i64)
    } else {
        json!(secs)
    }
}

async fn rate_write(s: Arc<Sys>, f: Fields) -> Result<Option<Response>> {
    let u = unsealed(&s)?;
    let input: RateLimitInput = f.input();
    let name = input.name;
    let old = u.quotas.rate_limits().into_iter().find(|q| q.name == name);
    let rate = match input.rate {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) if !s.is_empty() => s.parse::<f64>().ok(),
        None => old.as_ref().map(|q| q.rate),
        _ => None,
    };
    let Some(rate) = rate.filter(|r| *r > 0.0) else {
        return Err(LogicalError::invalid("quota rate must be positive"));
    };
    let interval = secs_field(input.interval.as_ref(), "interval")?
        .or(old.as_ref().map(|q| q.interval))
        .unwrap_or(1.0);
    if interval < 1.0 {
        return Err(LogicalError::invalid(
            "interval must be at least one second",
        ));
    }
    let block_interval = secs_field(input.block_interval.as_ref(), "block_interval")?
        .or(old.as_ref().map(|q| q.block_interval))
        .unwrap_or(0.0);
    if block_interval < 0.0 {
        return Err(LogicalError::invalid("block_interval cannot be negative"));
    }
    let path = match input.path {
        Some(p) => quota_path(&u, &p)?,
        None => old.as_ref().map(|q| q.path.clone()).unwrap_or_default(),
    };
    let role = input
        .role
        .or(old.as_ref().map(|q| q.role.clone()))
        .unwrap_or_default();
    role_needs_auth_path(&role, &path)?;
    let burst = match input.burst {
        Some(b) if b < 1 => return Err(LogicalError::invalid("burst must be at least 1")),
        Some(b) => Some(b as u64),
        None => old.as_ref().and_then(|q| q.burst),
    };
    let q = RateLimitQuota {
        v: 1,
        name,
        path,
        role,
        rate,
        interval,
        block_interval,
        inheritable: input
            .inheritable
            .or(old.as_ref().map(|q| q.inheritable))
            .unwrap_or(false),
        burst,
    };
    u.quotas.put_rate_limit(&q).await.map_err(le)?;
    Ok(None)
}

async fn lease_read(s: Arc<Sys>, f: Fields) -> Result<Option<Response>> {
    let name = f.input::<LeaseCountInput>().name;
    let Some(q) = unsealed(&s)?
        .quotas
        .lease_counts()
        .into_iter()
        .find(|q| q.name == name)
    else {
        return Ok(None);
    };
    let u = unsealed(&s)?;
    let fixed = q.path.split('*').next().unwrap_or_default().to_owned();
    let counter = u
        .expiration
        .all_under(&fixed, usize::MAX)
        .await
        .map_err(le)?
        .into_iter()
        .filter(|id| crate::quotas::path_matches(&q.path, id))
        .count();
    Ok(Some(Response::json(json!({
        "name": q.name,
        "type": "lease-count",
        "path": q.path,
        "role": q.role,
        "max_leases": q.max_leases,
        "counter": counter,
        "inheritable": q.inheritable,
    }))))
}

async fn lease_write(s: Arc<Sys>, f: Fields) -> Result<Option<Response>> {
    let u = unsealed(&s)?;
    let input: LeaseCountInput = f.input();
    let name = input.name;
    let old = u.quotas.lease_counts().into_iter().find(|q| q.name == name);
    let max = match input.max_leases {
        Some(m) => m,
        None => old.as_ref().map(|q| q.max_leases as i64).unwrap_or(0),
    };
    if max <= 0 {
        return Err(LogicalError::invalid("max_leases must be positive"));
    }
    let path = match input.path {
        Some(p) => quota_path(&u, &p)?,
        None => old.as_ref().map(|q| q.path.clone()).unwrap_or_default(),
    };
    let role = input
        .role
        .or(old.as_ref().map(|q| q.role.clone()))
        .unwrap_or_default();
    role_needs_auth_path(&role, &path)?;
    let q = LeaseCountQuota {
        v: 1,
        name,
        path,
        role,
        max_leases: max as u64,
        inheritable: input
            .inheritable
            .or(old.as_ref().map(|q| q.inheritable))
            .unwrap_or(false),
    };
    u.quotas.put_lease_count(&q).await.map_err(le)?;
    Ok(None)
}

fn keys(mut names: Vec<String>) -> Option<Response> {
    if names.is_empty() {
        return None;
    }
    names.sort();
    Some(Response::json(json!({ "keys": names })))
}

async fn config_read(s: Arc<Sys>) -> Result<Option<Response>> {
    let c = unsealed(&s)?.quotas.config();
    Ok(Some(Response::json(json!({
        "rate_limit_exempt_paths": c.rate_limit_exempt_paths,
        "enable_rate_limit_audit_logging": c.enable_rate_limit_audit_logging,
        "enable_rate_limit_response_headers": c.enable_rate_limit_response_headers,
    }))))
}

async fn config_write(s: Arc<Sys>, f: Fields) -> Result<Option<Response>> {
    let u = unsealed(&s)?;
    let mut c: QuotaConfig = u.quotas.config();
    let input: QuotaConfigInput = f.input();
    if let Some(paths) = input.rate_limit_exempt_paths {
        c.rate_limit_exempt_paths = paths
            .into_iter()
            .map(|p| {
                p.trim_start_matches('/')
                    .trim_start_matches("v1/")
                    .to_owned()
            })
            .collect();
    }
    if let Some(b) = input.enable_rate_limit_audit_logging {
        c.enable_rate_limit_audit_logging = b;
    }
    if let Some(b) = input.enable_rate_limit_response_headers {
        c.enable_rate_limit_response_headers = b;
    }
    u.quotas.put_config(&c).await.map_err(le)?;
    Ok(None)
}

fn logs() -> Result<&'static dyn crate::diagnostics::LogControl> {
    crate::diagnostics::installed()
        .map(|i| i.logs.as_ref())
        .ok_or_else(|| LogicalError::invalid("this server's log cannot be changed at run time"))
}

async fn loggers(req: Request, f: Fields) -> Result<Option<Response>> {
    let name = req
        .path
        .strip_prefix("loggers/")
        .map(str::to_owned)
        .filter(|n| !n.is_empty());
    let l = logs()?;
    match req.operation {
        Operation::Read => {
            let levels = l.levels();
            let data: Map<String, Value> = match &name {
                None => levels
                    .into_iter()
                    .filter(|(k, _)| !k.is_empty())
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
                Some(n) => match levels.get(n) {
                    Some(v) => [(n.clone(), Value::String(v.clone()))]
                        .into_iter()
                        .collect(),
                    None => {
                        return Err(LogicalError::invalid(format!("logger {n:?} not found")));
                    }
                },
            };
            Ok(Some(Response::data(data)))
        }
        Operation::Delete => {
            l.reset(name.as_deref()).map_err(LogicalError::invalid)?;
            Ok(None)
        }
        _ => {
            let level = f.input::<LoggersInput>().level;
            if level.is_empty() {
                return Err(LogicalError::invalid("level is required"));
            }
            l.set_level(name.as_deref(), &level)
                .map_err(LogicalError::invalid)?;
            Ok(None)
        }
    }
}

async fn version_history(s: Arc<Sys>) -> Result<Option<Response>> {
    let u = unsealed(&s)?;
    let mut keys = Vec::new();
    let mut info = Map::new();
    for v in u.barrier.list(VERSIONS).await.map_err(le)? {
        if let Some(b) = u.barrier.get(&format!("{VERSIONS}{v}")).await.map_err(le)? {
            let mut e: Value = serde_json::from_slice(&b).unwrap_or(json!({}));
            if let Value::Object(m) = &mut e {
                m.insert("previous_version".into(), Value::Null);
            }
            keys.push(v.clone());
            info.insert(v, e);
        }
    }
    // Oldest first, each naming the one before it.
    keys.sort_by(|a, b| {
        let t = |k: &String| {
            info.get(k)
                .and_then(|e| e.get("timestamp_installed"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        t(a).cmp(&t(b))
    });
    for w in 1..keys.len() {
        let prev = keys[w - 1].clone();
        if let Some(Value::Object(m)) = info.get_mut(&keys[w]) {
            m.insert("previous_version".into(), Value::String(prev));
        }
    }
    Ok(Some(Response::json(
        json!({ "keys": keys, "key_info": info }),
    )))
}

async fn monitor(f: Fields) -> Result<Option<Response>> {
    let MonitorInput {
        log_level: level,
        log_format: format,
    } = f.input();
    let level = if level.is_empty() {
        "info".into()
    } else {
        level.to_lowercase()
    };
    if !matches!(
        level.as_str(),
        "trace" | "debug" | "info" | "warn" | "error"
    ) {
        return Err(LogicalError::invalid(format!(
            "unknown log level {level:?}"
        )));
    }
    if !matches!(format.as_str(), "" | "standard" | "json") {
        return Err(LogicalError::invalid(format!(
            "unknown log format {format:?}; must be standard or json"
        )));
    }
    logs()?;
    Ok(Some(Response::json(
        json!({"log_level": level, "log_format": if format.is_empty() { "standard".into() } else { format }}),
    )))
}

pub(crate) fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("metrics")
            .input::<MetricsInput>()
            .op(Operation::Read, |s, r, f| Box::pin(metrics(s, r, f)))
            .help("Telemetry metrics.", "Vault's metric names (docs/operations.md): summaries of timers in milliseconds with the quantiles 0.5, 0.9 and 0.99, counters and gauges."),
        Path::new("quotas/config")
            .input::<QuotaConfigInput>()
            .op(Operation::Read, |s, _, _| Box::pin(config_read(s)))
            .op(Operation::Update, |s, _, f| Box::pin(config_write(s, f)))
            .help("The quota configuration.", "Exempt paths and the rate limits' audit logging and response headers."),
        Path::new("quotas/rate-limit/")
            .op(Operation::List, |s, _, _| Box::pin(async move {
                Ok(keys(unsealed(&s)?.quotas.rate_limits().into_iter().map(|q| q.name).collect()))
            }))
            .help("List the rate-limit quotas.", "Their names."),
        Path::new("quotas/rate-limit/{name}")
            .input::<RateLimitInput>()
            .op(Operation::Read, |s, _, f| Box::pin(rate_read(s, f)))
            .op(Operation::Update, |s, _, f| Box::pin(rate_write(s, f)))
            .op(Operation::Delete, |s, _, f| Box::pin(async move {
                unsealed(&s)?.quotas.delete("rate-limit", &f.input::<RateLimitInput>().name).await.map_err(le)?;
                Ok(None)
            }))
            .help("A rate-limit quota.", "rate requests per interval per client address on path; over the limit, 429."),
        Path::new("quotas/lease-count/")
            .op(Operation::List, |s, _, _| Box::pin(async move {
                Ok(keys(unsealed(&s)?.quotas.lease_counts().into_iter().map(|q| q.name).collect()))
            }))
            .help("List the lease-count quotas.", "Their names."),
        Path::new("quotas/lease-count/{name}")
            .input::<LeaseCountInput>()
            .op(Operation::Read, |s, _, f| Box::pin(lease_read(s, f)))
            .op(Operation::Update, |s, _, f| Box::pin(lease_write(s, f)))
            .op(Operation::Delete, |s, _, f| Box::pin(async move {
                unsealed(&s)?.quotas.delete("lease-count", &f.input::<LeaseCountInput>().name).await.map_err(le)?;
                Ok(None)
            }))
            .help("A lease-count quota.", "At most max_leases leases under path; a request that would create one more gets 429."),
        Path::new("in-flight-req")
            .op(Operation::Read, |_, _, _| Box::pin(async move {
                let Value::Object(m) = crate::diagnostics::in_flight() else { unreachable!() };
                // Vault answers the map bare, not in the usual envelope.
                Ok(Some(Response { raw: Some(RawResponse { headers: Vec::new(), status: 200, content_type: "application/json".into(), body: Value::Object(m).to_string().into_bytes() }), ..Default::default() }))
            }))
            .help("The requests in flight.", "Start time, client address, path and method of every request being served."),
        Path::new("host-info")
            .op(Operation::Read, |_, _, _| Box::pin(async move {
                let Value::Object(m) = tokio::task::spawn_blocking(crate::diagnostics::host_info).await.map_err(|e| LogicalError::internal(e.to_string()))? else { unreachable!() };
                Ok(Some(Response::data(m)))
            }))
            .help("Information about the host.", "CPUs, CPU times, disks, host and memory, from /proc."),
        Path::new("loggers")
            .input::<LoggersInput>()
            .op(Operation::Read, |_, r, f| Box::pin(loggers(r, f)))
            .op(Operation::Update, |_, r, f| Box::pin(loggers(r, f)))
            .op(Operation::Delete, |_, r, f| Box::pin(loggers(r, f)))
            .help("The log levels.", "Read them, set every logger's level, or go back to the configured level."),
        Path::new("loggers/{name}")
            .input::<LoggerInput>()
            .op(Operation::Read, |_, r, f| Box::pin(loggers(r, f)))
            .op(Operation::Update, |_, r, f| Box::pin(loggers(r, f)))
            .op(Operation::Delete, |_, r, f| Box::pin(loggers(r, f)))
            .help("One logger's level.", "Read it, set it, or go back to the configured level."),
        Path::new("config/state/sanitized")
            .op(Operation::Read, |_, _, _| Box::pin(async move {
                let v = crate::diagnostics::installed().map(|i| i.sanitized_config.clone()).unwrap_or(json!({}));
                let Value::Object(m) = v else { return Ok(None) };
                Ok(Some(Response::data(m)))
            }))
            .help("The server's configuration without secrets.", "As loaded at start-up; values that could be secret (seal and storage credentials, TLS keys) are left out."),
        Path::new("version-history/")
            .op(Operation::List, |s, _, _| Box::pin(version_history(s)))
            .help("The versions this server has run.", "Each with when it was first unsealed and the version before it."),
        Path::new("monitor")
            .input::<MonitorInput>()
            .op(Operation::Read, |_, _, f| Box::pin(monitor(f)))
            .help("Stream the server's log.", "Lines at log_level and above, as they are written, until the client disconnects."),
    ]
}
