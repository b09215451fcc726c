//! Dynamic roles (`roles/:name`), the credentials they issue (`creds/:name`) and the leased
//! secret's renewal and revocation.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tresor_sdk::framework::Fields;
use tresor_sdk::{LogicalError, Request, Response, Result, SecretLease};

use crate::db::Vals;
use crate::engine::Engine;
use crate::inputs::{RoleInput, RoleNameInput, sent_or};
use crate::store::{self, Role};
use crate::template::{self, UsernameInput};

/// The secret type of leased credentials.
pub const SECRET_CREDS: &str = "creds";

/// A statements field: a string is one entry (commas are SQL, not separators), an array is
/// several.
pub fn statements(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) if s.trim().is_empty() => Vec::new(),
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .filter(|s| !s.trim().is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

fn key(name: &str) -> String {
    format!("{}{name}", store::ROLE)
}

impl Engine {
    pub async fn role(&self, s: &dyn tresor_sdk::Storage, name: &str) -> Result<Option<Role>> {
        store::load(s, "database role", &key(name)).await
    }

    pub async fn role_exists(self: Arc<Self>, req: Request, f: Fields) -> Result<bool> {
        Ok(req
            .storage
            .get(&key(&f.input::<RoleNameInput>().name))
            .await?
            .is_some())
    }

    pub async fn role_write(self: Arc<Self>, req: Request, f: Fields) -> Result<Option<Response>> {
        let input: RoleInput = f.input();
        let name = input.name;
        store::check_name(&name, "role")?;
        let s = &*req.storage;
        if s.get(&format!("{}{name}", store::STATIC_ROLE))
            .await?
            .is_some()
        {
            return Err(LogicalError::invalid(format!(
                "role {name:?} already exists as a static role"
            )));
        }
        let old = self.role(s, &name).await?;
        let creating = old.is_none();
        let mut r = old.unwrap_or_default();
        r.version = 1;
        let stmts = |v: Option<Value>| sent_or(v.as_ref().map(statements), creating, Vec::new);
        if let Some(v) = sent_or(input.db_name, creating, String::new) {
            r.db_name = v;
        }
        if r.db_name.is_empty() {
            return Err(LogicalError::invalid("empty database name attribute"));
        }
        if let Some(v) = stmts(input.creation_statements) {
            r.creation_statements = v;
        }
        if crate::sql::split_all(&r.creation_statements).is_empty() {
            return Err(LogicalError::invalid("empty creation statements"));
        }
        if let Some(v) = stmts(input.revocation_statements) {
            r.revocation_statements = v;
        }
        if let Some(v) = stmts(input.rollback_statements) {
            r.rollback_statements = v;
        }
        if let Some(v) = stmts(input.renew_statements) {
            r.renew_statements = v;
        }
        if let Some(d) = sent_or(input.default_ttl, creating, Default::default) {
            r.default_ttl = d.as_secs();
        }
        if let Some(d) = sent_or(input.max_ttl, creating, Default::default) {
            r.max_ttl = d.as_secs();
        }
        if r.max_ttl > 0 && r.default_ttl > r.max_ttl {
            return Err(LogicalError::invalid("ttl cannot be greater than max_ttl"));
        }
        let ct = input.credential_type;
        if !ct.is_empty() && ct != "password" {
            return Err(LogicalError::invalid(format!(
                "credential_type {ct:?} is not supported: only \"password\""
            )));
        }
        store::save(s, &key(&name), &r).await?;
        Ok(None)
    }

    pub async fn role_read(self: Arc<Self>, req: Request, f: Fields) -> Result<Option<Response>> {
        let Some(r) = self
            .role(&*req.storage, &f.input::<RoleNameInput>().name)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(Response::json(json!({
            "db_name": r.db_name,
            "creation_statements": r.creation_statements,
            "revocation_statements": r.revocation_statements,
            "rollback_statements": r.rollback_statements,
            "renew_statements": r.renew_statements,
            "default_ttl": r.default_ttl,
            "max_ttl": r.max_ttl,
            "credential_type": "password",
        }))))
    }

    pub async fn role_delete(self: Arc<Self>, req: Request, f: Fields) -> Result<Option<Response>> {
        req.storage
            .delete(&key(&f.input::<RoleNameInput>().name))
            .await?;
        Ok(None)
    }

    pub async fn role_list(self: Arc<Self>, req: Request, _f: Fields) -> Result<Option<Response>> {
        Ok(Some(Response::list(req.storage.list(store::ROLE).await?)))
    }

    /// The TTL and max TTL a role's credentials get, from the role or the mount.
    fn ttls(req: &Request, r: &Role) -> (Duration, Duration) {
        let max = if r.max_ttl > 0 {
            Duration::from_secs(r.max_ttl).min(req.mount.max_lease_ttl)
        } else {
            req.mount.max_lease_ttl
        };
        let ttl = if r.default_ttl > 0 {
            Duration::from_secs(r.default_ttl)
        } else {
            req.mount.default_lease_ttl
        };
        (ttl.min(max), max)
    }

    /// Creates a user for the role and returns it under a lease.
    pub async fn creds(self: Arc<Self>, req: Request, f: Fields) -> Result<Option<Response>> {
        let name = f.input::<RoleNameInput>().name;
        let s = &*req.storage;
        let r = self
            .role(s, &name)
            .await?
            .ok_or_else(|| LogicalError::invalid(format!("unknown role: {name}")))?;
        let (cfg, db) = self.pool(s, &r.db_name).await?;
        if !cfg.allows(&name) {
            return Err(LogicalError::Forbidden(format!(
                "{name:?} is not an allowed role"
            )));
        }
        let (ttl, max) = Self::ttls(&req, &r);
        let now_ms = self
            .clock
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let tmpl = if cfg.username_template.is_empty() {
            db.plugin.default_username_template()
        } else {
            cfg.username_template.as_str()
        };
        let display = req.caller.display_name.replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
            "_",
        );
        let username = template::render_username(
            tmpl,
            &UsernameInput {
                display_name: &display,
                role_name: &name,
                now_millis: now_ms,
            },
        )
        .map_err(|e| LogicalError::Internal(format!("generating the username: {e}")))?;
        if username.is_empty() || username.chars().count() > db.plugin.max_username() {
            return Err(LogicalError::invalid(format!(
                "the username template gave a name of {} characters; the database takes 1 to {}",
                username.chars().count(),
                db.plugin.max_username()
            )));
        }
        let password = self.password(s, req.mount.system.as_deref(), &cfg).await?;
        let expiration = db
            .plugin
            .expiration(now_ms.div_euclid(1000) + ttl.as_secs() as i64);
        // Written ahead: if this server stops before the creation is answered, the periodic
        // pass drops the user (crate::wal).
        let wal = crate::wal::key(&username);
        store::save(
            s,
            &wal,
            &crate::wal::WalEntry {
                version: 1,
                db_name: r.db_name.clone(),
                role: name.clone(),
                username: username.clone(),
                created: now_ms.div_euclid(1000),
            },
        )
        .await?;
        let created = db
            .create_user(
                &r.creation_statements,
                &r.rollback_statements,
                &Vals {
                    name: &username,
                    password: &password,
                    expiration: &expiration,
                },
            )
            .await;
        // Created, or rolled back: either way nothing is left half-done.
        s.delete(&wal).await?;
        created.map_err(|e| LogicalError::invalid(format!("error creating the user: {e}")))?;
        let mut data = Map::new();
        data.insert("username".into(), json!(username));
        data.insert("password".into(), json!(password.as_str()));
        let mut internal = Map::new();
        internal.insert("username".into(), json!(username));
        internal.insert("role".into(), json!(name));
        internal.insert("db_name".into(), json!(r.db_name));
        let mut resp = Response::data(data);
        resp.secret = Some(SecretLease {
            secret_type: SECRET_CREDS.into(),
            ttl,
            max_ttl: Some(max),
            renewable: true,
            internal_data: internal,
        });
        Ok(Some(resp))
    }

    fn internal(req: &Request, k: &str) -> String {
        req.secret
            .as_ref()
            .and_then(|s| s.internal_data.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    /// Extends the user's validity with the role's renew statements (PostgreSQL's default
    /// moves `VALID UNTIL`).
    pub async fn creds_renew(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        let s = &*req.storage;
        let role_name = Self::internal(&req, "role");
        let username = Self::internal(&req, "username");
        let r = self.role(s, &role_name).await?.ok_or_else(|| {
            LogicalError::invalid(format!(
                "error during renew: could not find role with name {role_name:?}"
            ))
        })?;
        let (default, max) = Self::ttls(&req, &r);
        let ttl = req
            .secret
            .as_ref()
            .and_then(|x| x.increment)
            .filter(|d| !d.is_zero())
            .unwrap_or(default)
            .min(max);
        let (_, db) = self.pool(s, &r.db_name).await?;
        let expiration = db.plugin.expiration(self.now() + ttl.as_secs() as i64);
        let stmts = if r.renew_statements.is_empty() && !db.plugin.is_mysql() {
            vec![format!(
                "ALTER ROLE {} VALID UNTIL '{{{{expiration}}}}'",
                crate::sql::pg_ident(&username)
            )]
        } else {
            r.renew_statements.clone()
        };
        if !stmts.is_empty() {
            db.exec(
                &stmts,
                &Vals {
                    name: &username,
                    password: "",
                    expiration: &expiration,
                },
            )
            .await
            .map_err(|e| LogicalError::invalid(format!("error renewing the user: {e}")))?;
        }
        let resp = Response {
            secret: Some(SecretLease {
                secret_type: SECRET_CREDS.into(),
                ttl,
                max_ttl: Some(max),
                renewable: true,
                internal_data: Map::new(),
            }),
            ..Default::default()
        };
        Ok(Some(resp))
    }

    /// Drops the user and ends its sessions (on expiry and on revocation).
    pub async fn creds_revoke(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        let s = &*req.storage;
        let username = Self::internal(&req, "username");
        if username.is_empty() {
            return Err(LogicalError::internal("lease has no username"));
        }
        let role_name = Self::internal(&req, "role");
        let role = self.role(s, &role_name).await?;
        let (db_name, stmts) = match &role {
            Some(r) => (r.db_name.clone(), r.revocation_statements.clone()),
            // The role is gone: the database it used, with the default statements.
            None => (Self::internal(&req, "db_name"), Vec::new()),
        };
        let (_, db) = self.pool(s, &db_name).await?;
        db.revoke_user(&username, &stmts)
            .await
            .map_err(|e| LogicalError::Internal(format!("error revoking the user: {e}")))?;
        Ok(None)
    }
}
