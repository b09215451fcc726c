//! `sys/internal/counters/*` of the system backend: the entity and token totals, and client
//! counts per month from the activity log (`crate::activity`), with its configuration and an
//! export of the clients of a period.

use std::sync::Arc;

use serde_json::json;
use tresor_sdk::framework::{Fields, Path};
use tresor_sdk::{LogicalError, Operation, RawResponse, Response, Result, Storage as _};

use crate::activity::{
    self, ActivityConfig, ClientRecord, MAX_RETENTION_MONTHS, MIN_RETENTION_MONTHS,
};
use crate::system::{Sys, handles, le};
use crate::tokens::{now, rfc3339};

tresor_sdk::input! {
    /// `sys/internal/counters/activity`.
    struct ActivityInput {
        start_time: Str, "The start of the period: RFC 3339 or Unix seconds (default: the start of the month default_report_months - 1 months before end_time).";
        end_time: Str, "The end of the period: RFC 3339 or Unix seconds (default: now).";
        limit_namespaces: Int, "Accepted for compatibility; Tresor has the root namespace only.";
    }
}

tresor_sdk::input! {
    /// `sys/internal/counters/activity/export`.
    struct ExportInput {
        start_time: Str, "The start of the period: RFC 3339 or Unix seconds (default: the start of the month default_report_months - 1 months before end_time).";
        end_time: Str, "The end of the period: RFC 3339 or Unix seconds (default: now).";
        format: Str, "json (one object per line) or csv.", default = "json";
    }
}

tresor_sdk::input! {
    /// `sys/internal/counters/config`: each setting changes only when sent.
    struct ConfigInput {
        enabled: OptStr, "enable, disable or default (enabled).";
        retention_months: OptInt, "How many months of client records to keep (48 to 60).", default = MIN_RETENTION_MONTHS;
        default_report_months: OptInt, "How many months a query without start_time covers.", default = 12;
    }
}

/// A time given as RFC 3339 or as Unix seconds; `None` when the field is empty.
fn time_field(v: &str, name: &str) -> Result<Option<i64>> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if let Ok(n) = v.parse::<i64>() {
        return Ok(Some(n));
    }
    tresor_sdk::clock::parse_rfc3339(v)
        .map(Some)
        .ok_or_else(|| {
            LogicalError::invalid(format!(
                "failed to parse {name} {v:?}: expected an RFC 3339 time or Unix seconds"
            ))
        })
}

/// The period a query asks for: `end_time` defaults to now and `start_time` to the start of
/// the month `default_report_months - 1` months before the end. Nothing is recorded in the
/// future or before 1970, so the period is clamped to `0..=now` (a far end cannot make a
/// report of thousands of empty months).
fn period(start_time: &str, end_time: &str, c: &ActivityConfig) -> Result<(i64, i64)> {
    let at = now();
    let end = time_field(end_time, "end_time")?.unwrap_or(at);
    let start = match time_field(start_time, "start_time")? {
        Some(s) => s,
        None => activity::add_months(end, 1 - c.default_report_months.max(1)),
    };
    if start > end {
        return Err(LogicalError::invalid("start_time is later than end_time"));
    }
    Ok((start.clamp(0, at), end.clamp(0, at)))
}

async fn entities(s: Arc<Sys>) -> Result<Option<Response>> {
    let c = handles(&s);
    let u = c.unsealed().map_err(le)?;
    let n = u.identity.entities().len();
    Ok(Some(Response::json(
        json!({"counters": {"entities": {"total": n}}}),
    )))
}

async fn tokens(s: Arc<Sys>) -> Result<Option<Response>> {
    let c = handles(&s);
    let u = c.unsealed().map_err(le)?;
    let n = u.tokens.view().list("id/").await?.len();
    Ok(Some(Response::json(
        json!({"counters": {"service_tokens": {"total": n}}}),
    )))
}

async fn activity_report(s: Arc<Sys>, f: Fields) -> Result<Option<Response>> {
    let c = handles(&s);
    let u = c.unsealed().map_err(le)?;
    let input: ActivityInput = f.input();
    let (start, end) = period(&input.start_time, &input.end_time, &u.activity.config())?;
    let months = u.activity.months(start, end).await.map_err(le)?;
    Ok(Some(Response::json(activity::report(&months, start, end))))
}

async fn monthly(s: Arc<Sys>) -> Result<Option<Response>> {
    let c = handles(&s);
    let u = c.unsealed().map_err(le)?;
    let at = now();
    let months = u.activity.months(at, at).await.map_err(le)?;
    let clients: Vec<&ClientRecord> = months.iter().flat_map(|(_, r)| r.iter()).collect();
    let mut data = activity::counts(clients.iter().copied());
    data["by_namespace"] = activity::by_namespace(&clients);
    data["months"] = json!([]);
    Ok(Some(Response::json(data)))
}

/// The clients of a period, each once (at its first token in the period): JSON lines or CSV.
async fn export(s: Arc<Sys>, f: Fields) -> Result<Option<Response>> {
    let c = handles(&s);
    let u = c.unsealed().map_err(le)?;
    let input: ExportInput = f.input();
    let format = match input.format {
        f if f.is_empty() => "json".to_owned(),
        f => f,
    };
    if format != "json" && format != "csv" {
        return Err(LogicalError::invalid(format!(
            "invalid format {format:?}: must be json or csv"
        )));
    }
    let (start, end) = period(&input.start_time, &input.end_time, &u.activity.config())?;
    let months = u.activity.months(start, end).await.map_err(le)?;
    let mut seen = std::collections::HashSet::new();
    let rows: Vec<&ClientRecord> = months
        .iter()
        .flat_map(|(_, r)| r.iter())
        .filter(|r| seen.insert(r.client_id.as_str()))
        .collect();
    const COLUMNS: [&str; 8] = [
        "client_id",
        "client_type",
        "namespace_id",
        "namespace_path",
        "mount_accessor",
        "mount_path",
        "mount_type",
        "timestamp",
    ];
    let fields = |r: &ClientRecord| {
        [
            r.client_id.clone(),
            r.client_type.clone(),
            "root".to_owned(),
            String::new(),
            r.mount_accessor.clone(),
            r.mount_path.clone(),
            r.mount_type.clone(),
            rfc3339(r.timestamp),
        ]
    };
    let mut body = String::new();
    if format == "csv" {
        body.push_str(&COLUMNS.join(","));
        body.push('\n');
        for r in &rows {
            let cells: Vec<String> = fields(r).iter().map(|v| csv_cell(v)).collect();
            body.push_str(&cells.join(","));
            body.push('\n');
        }
    } else {
        for r in &rows {
            let obj: serde_json::Map<String, serde_json::Value> = COLUMNS
                .iter()
                .zip(fields(r))
                .map(|(k, v)| ((*k).to_owned(), json!(v)))
                .collect();
            body.push_str(&serde_json::Value::Object(obj).to_string());
            body.push('\n');
        }
    }
    Ok(Some(Response {
        raw: Some(RawResponse {
            headers: Vec::new(),
            status: 200,
            content_type: if format == "csv" {
                "text/csv".into()
            } else {
                "application/json".into()
            },
            body: body.into_bytes(),
        }),
        ..Default::default()
    }))
}

/// A CSV cell, quoted when it holds a separator, a quote or a line break; a leading
/// character a spreadsheet would run as a formula is quoted and prefixed with `'`.
fn csv_cell(v: &str) -> String {
    let formula = v.starts_with(['=', '+', '-', '@']);
    if formula || v.contains([',', '"', '\n', '\r']) {
        let v = if formula {
            format!("'{v}")
        } else {
            v.to_owned()
        };
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_owned()
    }
}

async fn read_config(s: Arc<Sys>) -> Result<Option<Response>> {
    let c = handles(&s);
    let u = c.unsealed().map_err(le)?;
    let cfg = u.activity.config();
    let oldest = u.activity.oldest_month().await.map_err(le)?;
    let billing = oldest.unwrap_or_else(|| activity::month_start(now()));
    Ok(Some(Response::json(json!({
        "default_report_months": cfg.default_report_months,
        "enabled": cfg.enabled_label(),
        "queries_available": oldest.is_some(),
        "retention_months": cfg.retention_months,
        "minimum_retention_months": MIN_RETENTION_MONTHS,
        "reporting_enabled": false,
        "billing_start_timestamp": rfc3339(billing),
    }))))
}

async fn write_config(s: Arc<Sys>, f: Fields) -> Result<Option<Response>> {
    let c = handles(&s);
    let u = c.unsealed().map_err(le)?;
    let mut cfg = u.activity.config();
    let input: ConfigInput = f.input();
    if let Some(e) = input.enabled {
        match e.as_str() {
            "enable" | "disable" | "default" => cfg.enabled = e,
            other => {
                return Err(LogicalError::invalid(format!(
                    "enabled must be enable, disable or default, not {other:?}"
                )));
            }
        }
    }
    if let Some(m) = input.retention_months {
        if !(MIN_RETENTION_MONTHS..=MAX_RETENTION_MONTHS).contains(&m) {
            return Err(LogicalError::invalid(format!(
                "retention_months must be between {MIN_RETENTION_MONTHS} and {MAX_RETENTION_MONTHS}"
            )));
        }
        cfg.retention_months = m;
    }
    if let Some(m) = input.default_report_months {
        if m < 1 {
            return Err(LogicalError::invalid(
                "default_report_months must be greater than 0",
            ));
        }
        cfg.default_report_months = m;
    }
    u.activity.set_config(cfg).await.map_err(le)?;
    Ok(None)
}

pub(crate) fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("internal/counters/entities")
            .op(Operation::Read, |s, _, _| Box::pin(entities(s)))
            .help(
                "The number of identity entities.",
                "Returns the total number of identity entities.",
            ),
        Path::new("internal/counters/tokens")
            .op(Operation::Read, |s, _, _| Box::pin(tokens(s)))
            .help(
                "The number of service tokens.",
                "Returns the total number of live service tokens (batch tokens are not stored, so not counted).",
            ),
        Path::new("internal/counters/activity")
            .input::<ActivityInput>()
            .op(Operation::Read, |s, _, f| Box::pin(activity_report(s, f)))
            .help(
                "Client counts for a period.",
                "Returns the distinct clients (identity entities, and tokens without an entity counted by their set of policies) that obtained a token in the period: the total, the breakdown by namespace and auth mount, and each month with the clients new to the period.",
            ),
        Path::new("internal/counters/activity/monthly")
            .op(Operation::Read, |s, _, _| Box::pin(monthly(s)))
            .help(
                "Client counts of the current month.",
                "Returns the distinct clients that obtained a token since the start of the current month (UTC).",
            ),
        Path::new("internal/counters/activity/export")
            .input::<ExportInput>()
            .op(Operation::Read, |s, _, f| Box::pin(export(s, f)))
            .help(
                "Export the clients of a period.",
                "Returns each client of the period once, at its first token in the period, as JSON lines or CSV.",
            ),
        Path::new("internal/counters/config")
            .input::<ConfigInput>()
            .op(Operation::Read, |s, _, _| Box::pin(read_config(s)))
            .op(Operation::Update, |s, _, f| Box::pin(write_config(s, f)))
            .help(
                "Configure client counting.",
                "Turns client counting on or off and sets how long its records are kept.",
            ),
    ]
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn csv_cells_are_quoted_and_defused() {
        assert_eq!(csv_cell("auth/userpass/"), "auth/userpass/");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=cmd()"), "\"'=cmd()\"");
    }
}
