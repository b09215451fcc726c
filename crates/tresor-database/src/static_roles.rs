//! Static roles (`static-roles/:name`): an existing database account whose password Tresor
//! rotates every `rotation_period`, `static-creds/:name` (the password that works now), and
//! `rotate-role/:name`.
//!
//! A rotation sets a fresh password on the database and then stores it; applications reading
//! `static-creds` get the stored one. A failed rotation keeps the old password (the database
//! refused the change, so it still works), counts the failure and is retried from `periodic`
//! with a growing delay — always with a newly generated password, never the refused one.

use std::sync::Arc;

use serde_json::json;
use tresor_sdk::framework::Fields;
use tresor_sdk::{Context, LogicalError, Request, Response, Result, Storage};

use crate::engine::Engine;
use crate::inputs::{StaticNameInput, StaticRoleInput, sent_or};
use crate::roles::statements;
use crate::store::{self, StaticRole};

/// The shortest rotation period accepted.
const MIN_PERIOD: u64 = 5;
/// The shortest `rotation_window` (Vault's: one hour).
const MIN_WINDOW: u64 = 3600;

fn key(name: &str) -> String {
    format!("{}{name}", store::STATIC_ROLE)
}

/// Seconds to wait after the `n`th failure in a row (30 s doubling, at most an hour).
fn backoff(n: u32) -> i64 {
    (30i64 << n.saturating_sub(1).min(7)).min(3600)
}

impl Engine {
    async fn static_role(&self, s: &dyn Storage, name: &str) -> Result<Option<StaticRole>> {
        store::load(s, "static role", &key(name)).await
    }

    pub async fn static_exists(self: Arc<Self>, req: Request, f: Fields) -> Result<bool> {
        Ok(req
            .storage
            .get(&key(&f.input::<StaticNameInput>().name))
            .await?
            .is_some())
    }

    /// Sets a fresh password on the account and stores it. The caller holds the rotation
    /// lock.
    async fn rotate_static(
        &self,
        s: &dyn Storage,
        system: Option<&dyn tresor_sdk::SystemView>,
        name: &str,
        r: &mut StaticRole,
        now: i64,
    ) -> Result<()> {
        let (cfg, db) = self.pool(s, &r.db_name).await?;
        let pw = self.password(s, system, &cfg).await?;
        match db
            .set_password(&r.username, &pw, &r.rotation_statements)
            .await
        {
            Ok(()) => {
                r.password = pw.to_string();
                r.last_vault_rotation = now;
                r.failures = 0;
                r.retry_at = 0;
                store::save(s, &key(name), r).await
            }
            Err(e) => {
                r.failures = r.failures.saturating_add(1);
                r.retry_at = now + backoff(r.failures);
                store::save(s, &key(name), r).await?;
                Err(LogicalError::invalid(format!(
                    "error rotating the password of {:?}: {e}",
                    r.username
                )))
            }
        }
    }

    pub async fn static_write(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let input: StaticRoleInput = f.input();
        let name = input.name;
        store::check_name(&name, "role")?;
        let s = &*req.storage;
        if s.get(&format!("{}{name}", store::ROLE)).await?.is_some() {
            return Err(LogicalError::invalid(format!(
                "role {name:?} already exists as a dynamic role"
            )));
        }
        let _guard = self.rotation.lock().await;
        let old = self.static_role(s, &name).await?;
        let creating = old.is_none();
        let mut r = old.unwrap_or_default();
        r.version = 1;
        if let Some(v) = sent_or(input.db_name, creating, String::new) {
            r.db_name = v;
        }
        if r.db_name.is_empty() {
            return Err(LogicalError::invalid("empty database name attribute"));
        }
        if creating {
            let username = input.username.unwrap_or_default();
            if username.is_empty() {
                return Err(LogicalError::invalid(
                    "username is a required field to create a static role",
                ));
            }
            r.username = username;
        } else if input.username.is_some_and(|u| u != r.username) {
            return Err(LogicalError::invalid(
                "cannot update static account username",
            ));
        }
        // A period or a schedule (with an optional window), never both.
        let period_given = input.rotation_period.is_some();
        let schedule = input
            .rotation_schedule
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        let schedule_given = schedule.is_some();
        if period_given && schedule_given {
            return Err(LogicalError::invalid(
                "mutually exclusive fields rotation_period and rotation_schedule were both specified; only one of them can be provided",
            ));
        }
        if let Some(text) = schedule {
            crate::cron::Schedule::parse(&text).map_err(LogicalError::invalid)?;
            r.rotation_schedule = text;
            r.rotation_period = 0;
        } else if period_given || (creating && !schedule_given) {
            r.rotation_period = input.rotation_period.unwrap_or_default().as_secs();
            r.rotation_schedule.clear();
            r.rotation_window = 0;
        }
        if let Some(w) = input.rotation_window {
            if r.rotation_schedule.is_empty() {
                return Err(LogicalError::invalid(
                    "rotation_window is invalid with use of rotation_period",
                ));
            }
            let w = w.as_secs();
            if w != 0 && w < MIN_WINDOW {
                return Err(LogicalError::invalid(format!(
                    "rotation_window must be {MIN_WINDOW} seconds or more"
                )));
            }
            r.rotation_window = w;
        }
        if r.rotation_schedule.is_empty() && r.rotation_period < MIN_PERIOD {
            return Err(LogicalError::invalid(format!(
                "rotation_period must be {MIN_PERIOD} seconds or more"
            )));
        }
        if let Some(v) = sent_or(
            input.rotation_statements.as_ref().map(statements),
            creating,
            Vec::new,
        ) {
            r.rotation_statements = v;
        }
        let cfg = self
            .config(s, &r.db_name)
            .await?
            .ok_or_else(|| LogicalError::invalid(format!("unknown database {:?}", r.db_name)))?;
        if !cfg.allows(&name) {
            return Err(LogicalError::Forbidden(format!(
                "{name:?} is not an allowed role"
            )));
        }
        if creating {
            // The account gets a password only Tresor knows, now.
            self.rotate_static(s, req.mount.system.as_deref(), &name, &mut r, self.now())
                .await?;
        } else {
            store::save(s, &key(&name), &r).await?;
        }
        Ok(None)
    }

    pub async fn static_read(self: Arc<Self>, req: Request, f: Fields) -> Result<Option<Response>> {
        let Some(r) = self
            .static_role(&*req.storage, &f.input::<StaticNameInput>().name)
            .await?
        else {
            return Ok(None);
        };
        let mut d = json!({
            "db_name": r.db_name,
            "username": r.username,
            "rotation_statements": r.rotation_statements,
            "last_vault_rotation": tresor_sdk::clock::rfc3339(r.last_vault_rotation),
            "credential_type": "password",
        });
        rotation_fields(&mut d, &r);
        Ok(Some(Response::json(d)))
    }

    pub async fn static_delete(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        req.storage
            .delete(&key(&f.input::<StaticNameInput>().name))
            .await?;
        Ok(None)
    }

    pub async fn static_list(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        Ok(Some(Response::list(
            req.storage.list(store::STATIC_ROLE).await?,
        )))
    }

    pub async fn static_creds(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let name = f.input::<StaticNameInput>().name;
        let r = self
            .static_role(&*req.storage, &name)
            .await?
            .ok_or_else(|| LogicalError::invalid(format!("unknown role: {name}")))?;
        let now = self.now();
        let mut d = json!({
            "username": r.username,
            "password": r.password.as_str(),
            "last_vault_rotation": tresor_sdk::clock::rfc3339(r.last_vault_rotation),
            "ttl": (next_rotation(&r, now) - now).max(0),
        });
        rotation_fields(&mut d, &r);
        Ok(Some(Response::json(d)))
    }

    pub async fn rotate_role(self: Arc<Self>, req: Request, f: Fields) -> Result<Option<Response>> {
        let name = f.input::<StaticNameInput>().name;
        let s = &*req.storage;
        let _guard = self.rotation.lock().await;
        let mut r = self
            .static_role(s, &name)
            .await?
            .ok_or_else(|| LogicalError::invalid(format!("unknown role: {name}")))?;
        self.rotate_static(s, req.mount.system.as_deref(), &name, &mut r, self.now())
            .await?;
        Ok(None)
    }

    /// Rotates every static role whose period has passed (or whose retry is due), at the
    /// time the core's clock gives.
    pub async fn rotate_due(&self, ctx: &Context) -> Result<()> {
        let s = &*ctx.storage;
        let now = tresor_sdk::clock::unix(ctx.now);
        let mut first_err = None;
        for name in s.list(store::STATIC_ROLE).await? {
            if name.ends_with('/') {
                continue;
            }
            let _guard = self.rotation.lock().await;
            let Some(mut r) = self.static_role(s, &name).await? else {
                continue;
            };
            let due = if r.failures > 0 {
                r.retry_at <= now
            } else {
                is_due(&r, now)
            };
            if !due {
                continue;
            }
            if let Err(e) = self
                .rotate_static(s, ctx.mount.system.as_deref(), &name, &mut r, now)
                .await
            {
                tracing::warn!(role = %name, error = %e, failures = r.failures, "static role rotation failed; will retry");
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// `rotation_period`, or `rotation_schedule` and `rotation_window`, as the role has them.
fn rotation_fields(d: &mut serde_json::Value, r: &StaticRole) {
    if r.rotation_schedule.is_empty() {
        d["rotation_period"] = json!(r.rotation_period);
    } else {
        d["rotation_schedule"] = json!(r.rotation_schedule);
        d["rotation_window"] = json!(r.rotation_window);
    }
}

/// When the role's password is next rotated (Unix seconds).
fn next_rotation(r: &StaticRole, now: i64) -> i64 {
    if r.rotation_schedule.is_empty() {
        return r
            .last_vault_rotation
            .saturating_add(i64::try_from(r.rotation_period).unwrap_or(i64::MAX));
    }
    match crate::cron::Schedule::parse(&r.rotation_schedule) {
        // The next scheduled time that can still rotate: one inside its window, or later.
        Ok(s) => s.next_after(rotation_floor(r, now)).unwrap_or(i64::MAX),
        Err(_) => i64::MAX,
    }
}

/// Scheduled times after this one count: after the last rotation, and (with a window) not
/// longer ago than the window.
fn rotation_floor(r: &StaticRole, now: i64) -> i64 {
    if r.rotation_window > 0 {
        let window = i64::try_from(r.rotation_window).unwrap_or(i64::MAX);
        r.last_vault_rotation.max(now.saturating_sub(window))
    } else {
        r.last_vault_rotation
    }
}

/// Whether the periodic pass rotates the role now: its period has passed, or a scheduled time
/// has come since the last rotation (and, with a window, less than the window ago; a missed
/// window waits for the next scheduled time).
fn is_due(r: &StaticRole, now: i64) -> bool {
    next_rotation(r, now) <= now
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), 30);
        assert_eq!(backoff(2), 60);
        assert_eq!(backoff(3), 120);
        assert_eq!(backoff(40), 3600);
    }
}
