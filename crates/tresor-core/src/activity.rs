//! Client counts (Vault's activity log): the distinct clients that obtained a token in each
//! calendar month (UTC), for `sys/internal/counters/activity*`.
//!
//! A client is an identity entity, or, for a token without one, the set of its policies (the
//! same policies make the same client, as Vault counts non-entity tokens). Each client is
//! recorded once per month under `sys/counters/activity/log/<month>/<client id>`, with the
//! auth mount where it was first seen that month. Recording costs one set lookup per new
//! token; storage is touched only the first time a client is seen in a month by this server
//! (a read, then a write if no other server recorded it).

use std::collections::{BTreeMap, HashMap, HashSet};

use base64::Engine as _;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tresor_sdk::Storage as _;

use crate::barrier::View;
use crate::error::CoreError;

/// Where the activity log lives behind the barrier.
pub const PREFIX: &str = "sys/counters/activity/";
const CONFIG: &str = "config";
const LOG: &str = "log/";

/// Vault's floor and ceiling for `retention_months`.
pub const MIN_RETENTION_MONTHS: i64 = 48;
pub const MAX_RETENTION_MONTHS: i64 = 60;

pub const ENTITY: &str = "entity";
pub const NON_ENTITY: &str = "non-entity-token";

/// One client's first token of a month.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClientRecord {
    pub client_id: String,
    /// `entity` or `non-entity-token`.
    pub client_type: String,
    pub mount_accessor: String,
    pub mount_path: String,
    pub mount_type: String,
    /// Unix seconds of the token that first made it a client this month.
    pub timestamp: i64,
}

/// `sys/internal/counters/config`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ActivityConfig {
    /// `default`, `enable` or `disable`.
    pub enabled: String,
    pub retention_months: i64,
    pub default_report_months: i64,
}

impl Default for ActivityConfig {
    fn default() -> Self {
        ActivityConfig {
            enabled: "default".into(),
            retention_months: MIN_RETENTION_MONTHS,
            default_report_months: 12,
        }
    }
}

impl ActivityConfig {
    pub fn is_enabled(&self) -> bool {
        self.enabled != "disable"
    }
    /// The `enabled` value Vault reports (`default` reads back as `default-enabled`).
    pub fn enabled_label(&self) -> &str {
        if self.enabled == "default" {
            "default-enabled"
        } else {
            &self.enabled
        }
    }
}

/// The last second this module works with (9999-12-31T23:59:59Z); times are clamped to
/// `0..=LAST`.
pub const LAST: i64 = 253_402_300_799;

/// The first second of the UTC month holding `unix` (clamped to 1970-01 ..= 9999-12).
pub fn month_start(unix: i64) -> i64 {
    let t = time::OffsetDateTime::from_unix_timestamp(unix.clamp(0, LAST))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let d = t.date();
    time::Date::from_calendar_date(d.year(), d.month(), 1)
        .map(|d| d.midnight().assume_utc().unix_timestamp())
        .unwrap_or(0)
}

/// The first second of the month `n` months after (or before, for negative `n`) the month
/// holding `unix`, clamped like [`month_start`].
pub fn add_months(unix: i64, n: i64) -> i64 {
    let t = time::OffsetDateTime::from_unix_timestamp(month_start(unix))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let months = (i64::from(t.year()) * 12 + i64::from(u8::from(t.month())) - 1)
        .saturating_add(n)
        .clamp(1970 * 12, 9999 * 12 + 11);
    let (year, month) = (months.div_euclid(12), months.rem_euclid(12) + 1);
    time::Month::try_from(month as u8)
        .ok()
        .and_then(|m| time::Date::from_calendar_date(year as i32, m, 1).ok())
        .map(|d| d.midnight().assume_utc().unix_timestamp())
        .unwrap_or(0)
}

/// The client a token counts as: its entity, or a digest of its sorted policies.
pub fn client_of(entity_id: &str, policies: &[String]) -> (String, &'static str) {
    if !entity_id.is_empty() {
        return (entity_id.to_owned(), ENTITY);
    }
    let mut p: Vec<&str> = policies.iter().map(String::as_str).collect();
    p.sort_unstable();
    p.dedup();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, p.join(",").as_bytes());
    (
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()),
        NON_ENTITY,
    )
}

/// The activity log over its barrier view.
pub struct ActivityLog {
    view: View,
    config: RwLock<ActivityConfig>,
    /// The month this server is recording, and the clients it knows are recorded for it.
    seen: Mutex<(i64, HashSet<String>)>,
}

fn sdk(e: tresor_sdk::LogicalError) -> CoreError {
    CoreError::from(e)
}

impl ActivityLog {
    pub async fn open(view: View) -> Result<Self, CoreError> {
        let log = ActivityLog {
            view,
            config: RwLock::new(ActivityConfig::default()),
            seen: Mutex::new((0, HashSet::new())),
        };
        log.reload().await?;
        Ok(log)
    }

    /// Reads the configuration (at unseal, and when another server changed it).
    pub async fn reload(&self) -> Result<(), CoreError> {
        let c = match self.view.get(CONFIG).await.map_err(sdk)? {
            Some(b) => serde_json::from_slice(&b)
                .map_err(|e| CoreError::Internal(format!("activity config: {e}")))?,
            None => ActivityConfig::default(),
        };
        *self.config.write() = c;
        Ok(())
    }

    pub fn config(&self) -> ActivityConfig {
        self.config.read().clone()
    }

    pub async fn set_config(&self, c: ActivityConfig) -> Result<(), CoreError> {
        let b = serde_json::to_vec(&c).map_err(|e| CoreError::Internal(e.to_string()))?;
        self.view.put(CONFIG, b).await.map_err(sdk)?;
        *self.config.write() = c;
        Ok(())
    }

    /// Counts the token just handed out at `at`. Returns whether it made a new client for
    /// the month.
    pub async fn record(
        &self,
        entity_id: &str,
        policies: &[String],
        route: (&str, &str, &str),
        at: i64,
    ) -> Result<bool, CoreError> {
        if !self.config.read().is_enabled() {
            return Ok(false);
        }
        let (client_id, client_type) = client_of(entity_id, policies);
        let month = month_start(at);
        let new_month = {
            let mut seen = self.seen.lock();
            // A token stamped just before a month turned (an older `at`) goes to storage
            // without resetting the set of the newer month.
            let newer = month > seen.0;
            if newer {
                *seen = (month, HashSet::new());
            } else if month == seen.0 && seen.1.contains(&client_id) {
                return Ok(false);
            }
            newer
        };
        if new_month {
            self.prune(month).await?;
        }
        let key = format!("{LOG}{month}/{client_id}");
        let fresh = self.view.get(&key).await.map_err(sdk)?.is_none();
        if fresh {
            let (mount_path, mount_accessor, mount_type) = route;
            let r = ClientRecord {
                client_id: client_id.clone(),
                client_type: client_type.into(),
                mount_accessor: mount_accessor.into(),
                mount_path: mount_path.into(),
                mount_type: mount_type.into(),
                timestamp: at,
            };
            let b = serde_json::to_vec(&r).map_err(|e| CoreError::Internal(e.to_string()))?;
            self.view.put(&key, b).await.map_err(sdk)?;
        }
        let mut seen = self.seen.lock();
        if seen.0 == month {
            seen.1.insert(client_id);
        }
        Ok(fresh)
    }

    /// Deletes the months older than the retention allows, counted back from `month`.
    async fn prune(&self, month: i64) -> Result<(), CoreError> {
        let keep = self
            .config
            .read()
            .retention_months
            .max(MIN_RETENTION_MONTHS);
        let oldest = add_months(month, -keep);
        for start in self.stored_months().await? {
            if start < oldest {
                self.view
                    .delete_prefix(&format!("{LOG}{start}/"))
                    .await
                    .map_err(sdk)?;
            }
        }
        Ok(())
    }

    /// Every month with records from the month holding `start` to the one holding `end`,
    /// oldest first.
    pub async fn months(
        &self,
        start: i64,
        end: i64,
    ) -> Result<Vec<(i64, Vec<ClientRecord>)>, CoreError> {
        let (first, last) = (month_start(start), month_start(end));
        let mut months = self.stored_months().await?;
        months.retain(|m| (first..=last).contains(m));
        months.sort_unstable();
        let mut out = Vec::with_capacity(months.len());
        for m in months {
            let prefix = format!("{LOG}{m}/");
            let mut records = Vec::new();
            for id in self.view.list(&prefix).await.map_err(sdk)? {
                if let Some(b) = self.view.get(&format!("{prefix}{id}")).await.map_err(sdk)?
                    && let Ok(r) = serde_json::from_slice::<ClientRecord>(&b)
                {
                    records.push(r);
                }
            }
            records.sort_by(|a, b| (a.timestamp, &a.client_id).cmp(&(b.timestamp, &b.client_id)));
            out.push((m, records));
        }
        Ok(out)
    }

    /// Whether any month has records (Vault's `queries_available`), and the oldest one.
    pub async fn oldest_month(&self) -> Result<Option<i64>, CoreError> {
        Ok(self.stored_months().await?.into_iter().min())
    }

    /// The months that have records (their first second), in no particular order.
    async fn stored_months(&self) -> Result<Vec<i64>, CoreError> {
        Ok(self
            .view
            .list(LOG)
            .await
            .map_err(sdk)?
            .iter()
            .filter_map(|m| m.trim_end_matches('/').parse::<i64>().ok())
            .collect())
    }
}

/// Vault's counts object for a set of clients.
pub fn counts<'a>(clients: impl IntoIterator<Item = &'a ClientRecord>) -> Value {
    let (mut entities, mut tokens) = (0u64, 0u64);
    for c in clients {
        if c.client_type == ENTITY {
            entities += 1;
        } else {
            tokens += 1;
        }
    }
    json!({
        "acme_clients": 0,
        "clients": entities + tokens,
        "distinct_entities": entities,
        "entity_clients": entities,
        "non_entity_clients": tokens,
        "non_entity_tokens": tokens,
        "secret_syncs": 0,
    })
}

/// The namespaces breakdown (Tresor has the root namespace only) with its mounts, largest
/// first; empty when there are no clients.
pub fn by_namespace(clients: &[&ClientRecord]) -> Value {
    if clients.is_empty() {
        return json!([]);
    }
    let mut mounts: BTreeMap<&str, Vec<&ClientRecord>> = BTreeMap::new();
    for c in clients {
        mounts.entry(c.mount_path.as_str()).or_default().push(c);
    }
    let mut mounts: Vec<(&str, Vec<&ClientRecord>)> = mounts.into_iter().collect();
    mounts.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
    json!([{
        "namespace_id": "root",
        "namespace_path": "",
        "counts": counts(clients.iter().copied()),
        "mounts": mounts
            .iter()
            .map(|(path, cs)| json!({"mount_path": path, "counts": counts(cs.iter().copied())}))
            .collect::<Vec<_>>(),
    }])
}

/// The `sys/internal/counters/activity` answer for `[start, end]` from the months' records:
/// the distinct clients of the whole period (each attributed to the mount of its first token
/// in the period), and each month of the period with its clients and the ones new to the
/// period that month. Months without records appear with null counts, as in Vault.
pub fn report(months: &[(i64, Vec<ClientRecord>)], start: i64, end: i64) -> Value {
    let by_month: HashMap<i64, &Vec<ClientRecord>> = months.iter().map(|(m, r)| (*m, r)).collect();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut total: Vec<&ClientRecord> = Vec::new();
    let mut month_rows = Vec::new();
    let mut m = month_start(start);
    let last = month_start(end);
    loop {
        match by_month.get(&m) {
            Some(records) if !records.is_empty() => {
                let all: Vec<&ClientRecord> = records.iter().collect();
                let new: Vec<&ClientRecord> = records
                    .iter()
                    .filter(|r| seen.insert(r.client_id.as_str()))
                    .collect();
                total.extend(new.iter().copied());
                month_rows.push(json!({
                    "timestamp": crate::tokens::rfc3339(m),
                    "counts": counts(all.iter().copied()),
                    "namespaces": by_namespace(&all),
                    "new_clients": {
                        "counts": counts(new.iter().copied()),
                        "namespaces": by_namespace(&new),
                    },
                }));
            }
            _ => month_rows.push(json!({
                "timestamp": crate::tokens::rfc3339(m),
                "counts": null,
                "namespaces": null,
                "new_clients": null,
            })),
        }
        if m >= last {
            break;
        }
        m = add_months(m, 1);
    }
    json!({
        "start_time": crate::tokens::rfc3339(start),
        "end_time": crate::tokens::rfc3339(end),
        "total": counts(total.iter().copied()),
        "by_namespace": by_namespace(&total),
        "months": month_rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, kind: &str, mount: &str, at: i64) -> ClientRecord {
        ClientRecord {
            client_id: id.into(),
            client_type: kind.into(),
            mount_accessor: format!("acc_{mount}"),
            mount_path: mount.into(),
            mount_type: "userpass".into(),
            timestamp: at,
        }
    }

    // 2026-10-15, 2026-11-03 and 2026-12-20 (UTC).
    const OCT: i64 = 1_792_022_400;
    const NOV: i64 = 1_793_664_000;
    const DEC: i64 = 1_797_724_800;

    #[test]
    fn months_are_utc_calendar_months() {
        assert_eq!(
            crate::tokens::rfc3339(month_start(OCT)),
            "2026-10-01T00:00:00Z"
        );
        assert_eq!(
            crate::tokens::rfc3339(add_months(OCT, 3)),
            "2027-01-01T00:00:00Z"
        );
        assert_eq!(
            crate::tokens::rfc3339(add_months(OCT, -10)),
            "2025-12-01T00:00:00Z"
        );
        assert_eq!(month_start(month_start(NOV)), month_start(NOV));
        // The last second of a month belongs to it.
        assert_eq!(month_start(month_start(DEC) - 1), month_start(NOV));
        // Out-of-range times are clamped, never wrap or panic.
        assert_eq!(month_start(-5), 0);
        assert_eq!(add_months(0, -3), 0);
        assert_eq!(
            crate::tokens::rfc3339(month_start(i64::MAX)),
            "9999-12-01T00:00:00Z"
        );
        assert_eq!(add_months(i64::MAX, i64::MAX), month_start(LAST));
        assert_eq!(add_months(OCT, i64::MIN), 0);
    }

    #[test]
    fn same_policies_make_one_client_whatever_their_order() {
        let a = client_of("", &["b".into(), "a".into()]);
        let b = client_of("", &["a".into(), "b".into(), "a".into()]);
        let c = client_of("", &["a".into()]);
        assert_eq!(a, b);
        assert_ne!(a.0, c.0);
        assert_eq!(a.1, NON_ENTITY);
        assert!(!a.0.contains('/'), "a client id is one storage key segment");
        assert_eq!(client_of("ent-1", &[]), ("ent-1".into(), ENTITY));
    }

    #[test]
    fn a_client_of_several_months_counts_once_in_the_total_and_new_once() {
        let months = vec![
            (
                month_start(OCT),
                vec![
                    rec("e1", ENTITY, "auth/userpass/", OCT),
                    rec("t1", NON_ENTITY, "auth/token/", OCT + 1),
                ],
            ),
            (
                month_start(DEC),
                vec![
                    rec("e1", ENTITY, "auth/ldap/", DEC),
                    rec("e2", ENTITY, "auth/ldap/", DEC + 5),
                ],
            ),
        ];
        let r = report(&months, OCT, DEC);
        assert_eq!(r["total"]["clients"], 3);
        assert_eq!(r["total"]["entity_clients"], 2);
        assert_eq!(r["total"]["non_entity_clients"], 1);
        let ms = r["months"].as_array().unwrap();
        assert_eq!(ms.len(), 3, "{r}");
        assert_eq!(ms[0]["counts"]["clients"], 2);
        assert_eq!(ms[1]["counts"], Value::Null, "November had no clients");
        assert_eq!(ms[2]["counts"]["clients"], 2);
        assert_eq!(
            ms[2]["new_clients"]["counts"]["clients"], 1,
            "e1 is not new"
        );
        // e1 is attributed to the mount of its first token in the period.
        let mounts = &r["by_namespace"][0]["mounts"];
        let userpass = mounts
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["mount_path"] == "auth/userpass/")
            .unwrap();
        assert_eq!(userpass["counts"]["clients"], 1);
        // A period from November on: e1 is new in December.
        let r = report(&months[1..], NOV, DEC);
        assert_eq!(r["total"]["clients"], 2);
        assert_eq!(r["months"][1]["new_clients"]["counts"]["clients"], 2);
    }

    #[test]
    fn an_empty_period_has_zero_counts_and_no_namespaces() {
        let r = report(&[], OCT, OCT);
        assert_eq!(r["total"]["clients"], 0);
        assert_eq!(r["by_namespace"], json!([]));
        assert_eq!(r["months"].as_array().unwrap().len(), 1);
    }
}
