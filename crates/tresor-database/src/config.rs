//! `config/:name` (write, read, delete, list), `reset/:name` and `rotate-root/:name`.
//!
//! A write builds the connection's pool from the new settings and, unless
//! `verify_connection=false`, connects before anything is stored: an unreachable database or
//! bad credentials are a 400 naming the host, and the old config (if any) stays. The root
//! password is never shown: a read returns the URL with any literal password masked.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use tresor_sdk::framework::Fields;
use tresor_sdk::{LogicalError, Request, Response, Result};

use crate::db::Plugin;
use crate::engine::{Engine, build_db};
use crate::inputs::{ConfigInput, ConnNameInput, sent_or};
use crate::roles::statements;
use crate::store::{self, ConnConfig};
use crate::template;

fn key(name: &str) -> String {
    format!("{}{name}", store::CONFIG)
}

/// The URL with a literal password (one not given as `{{password}}`) masked.
fn redact_url(url: &str, password: &str) -> String {
    let mut out = url.to_owned();
    if !password.is_empty() {
        out = out.replace(password, "*****");
    }
    // user:secret@ (URL and DSN forms)
    if let Some(at) = out.rfind('@') {
        let head = &out[..at];
        let start = head.find("://").map(|i| i + 3).unwrap_or(0);
        if let Some(colon) = head[start..].find(':') {
            let pw = &head[start + colon + 1..];
            if !pw.is_empty() && !pw.contains("{{") && !pw.contains('/') {
                out = format!("{}:*****{}", &head[..start + colon], &out[at..]);
            }
        }
    }
    // password=secret (keyword/value form)
    if let Some(i) = out.find("password=") {
        let rest = &out[i + 9..];
        let end = rest.find(' ').unwrap_or(rest.len());
        if !rest[..end].contains("{{") {
            out = format!("{}password=*****{}", &out[..i], &rest[end..]);
        }
    }
    out
}

impl Engine {
    pub async fn config_exists(self: Arc<Self>, req: Request, f: Fields) -> Result<bool> {
        Ok(req
            .storage
            .get(&key(&f.input::<ConnNameInput>().name))
            .await?
            .is_some())
    }

    pub async fn config_write(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let input: ConfigInput = f.input();
        let name = input.name;
        store::check_name(&name, "connection")?;
        let s = &*req.storage;
        let old = self.config(s, &name).await?;
        let mut c = old.clone().unwrap_or_else(|| {
            let mut c = ConnConfig::default();
            c.version = 1;
            c.max_open_connections = 4;
            c
        });
        let creating = old.is_none();
        if let Some(v) = sent_or(input.plugin_name, creating, String::new) {
            c.plugin_name = v;
        }
        if c.plugin_name.is_empty() {
            return Err(LogicalError::invalid("empty plugin name"));
        }
        let plugin = Plugin::from_name(&c.plugin_name).map_err(LogicalError::InvalidRequest)?;
        if let Some(v) = sent_or(input.connection_url, creating, String::new) {
            c.connection_url = v;
        }
        if c.connection_url.trim().is_empty() {
            return Err(LogicalError::invalid("connection_url cannot be empty"));
        }
        if let Some(v) = sent_or(input.username, creating, String::new) {
            c.username = v;
        }
        if let Some(v) = sent_or(input.password, creating, String::new) {
            c.password = v;
        }
        if let Some(v) = sent_or(input.allowed_roles, creating, Vec::new) {
            c.allowed_roles = v;
        }
        if let Some(v) = input
            .root_rotation_statements
            .or(input.root_credentials_rotate_statements)
        {
            c.root_rotation_statements = statements(&v);
        }
        if let Some(v) = sent_or(input.password_policy, creating, String::new) {
            c.password_policy = v;
            if !c.password_policy.is_empty() {
                self.policy(s, req.mount.system.as_deref(), &c.password_policy)
                    .await?;
            }
        }
        c.verify_connection = input.verify_connection;
        if let Some(n) = sent_or(input.max_open_connections, creating, || 4) {
            c.max_open_connections = n;
        }
        if c.max_open_connections <= 0 {
            c.max_open_connections = 4;
        }
        if let Some(n) = sent_or(input.max_idle_connections, creating, || 0) {
            c.max_idle_connections = n;
        }
        if let Some(d) = sent_or(input.max_connection_lifetime, creating, Default::default) {
            c.max_connection_lifetime = d.as_secs();
        }
        if let Some(v) = sent_or(input.username_template, creating, String::new) {
            c.username_template = v;
            if !c.username_template.is_empty() {
                template::check_username_template(&c.username_template).map_err(|e| {
                    LogicalError::invalid(format!("invalid username_template: {e}"))
                })?;
            }
        }
        if let Some(v) = sent_or(input.tls_ca, creating, String::new) {
            c.tls_ca = v;
        }
        if let Some(v) = sent_or(input.tls_certificate_key, creating, String::new) {
            c.tls_certificate_key = v;
        }
        if !plugin.is_mysql() && (!c.tls_ca.is_empty() || !c.tls_certificate_key.is_empty()) {
            return Err(LogicalError::invalid(
                "tls_ca and tls_certificate_key are MySQL settings; PostgreSQL takes sslmode in connection_url",
            ));
        }
        let db = build_db(&c)
            .map_err(|e| LogicalError::invalid(format!("error creating database object: {e}")))?;
        if c.verify_connection {
            db.verify().await.map_err(|e| {
                LogicalError::invalid(format!("error creating database object: {e}"))
            })?;
        }
        store::save(s, &key(&name), &c).await?;
        self.replace_pool(&name, Some(Arc::new(db))).await;
        let literal_password = !c.connection_url.contains("{{password}}")
            && redact_url(&c.connection_url, "") != c.connection_url;
        if literal_password {
            return Ok(Some(Response::default().with_warning(
                "the connection_url holds a literal password: use {{password}} and the password field so the root credential can be rotated and is never shown",
            )));
        }
        Ok(None)
    }

    pub async fn config_read(self: Arc<Self>, req: Request, f: Fields) -> Result<Option<Response>> {
        let Some(c) = self
            .config(&*req.storage, &f.input::<ConnNameInput>().name)
            .await?
        else {
            return Ok(None);
        };
        let mut details = Map::new();
        details.insert(
            "connection_url".into(),
            json!(redact_url(&c.connection_url, &c.password)),
        );
        details.insert("username".into(), json!(c.username));
        details.insert("max_open_connections".into(), json!(c.max_open_connections));
        details.insert("max_idle_connections".into(), json!(c.max_idle_connections));
        details.insert(
            "max_connection_lifetime".into(),
            json!(format!("{}s", c.max_connection_lifetime)),
        );
        if !c.username_template.is_empty() {
            details.insert("username_template".into(), json!(c.username_template));
        }
        if !c.tls_ca.is_empty() {
            details.insert("tls_ca".into(), json!(c.tls_ca));
        }
        Ok(Some(Response::json(json!({
            "plugin_name": c.plugin_name,
            "plugin_version": "",
            "connection_details": Value::Object(details),
            "allowed_roles": c.allowed_roles,
            "root_credentials_rotate_statements": c.root_rotation_statements,
            "password_policy": c.password_policy,
            "verify_connection": c.verify_connection,
        }))))
    }

    pub async fn config_delete(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let name = f.input::<ConnNameInput>().name;
        req.storage.delete(&key(&name)).await?;
        self.replace_pool(&name, None).await;
        Ok(None)
    }

    pub async fn config_list(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        Ok(Some(Response::list(req.storage.list(store::CONFIG).await?)))
    }

    /// Closes the connection's pool and opens a new one from the stored config.
    pub async fn reset(self: Arc<Self>, req: Request, f: Fields) -> Result<Option<Response>> {
        let name = f.input::<ConnNameInput>().name;
        let c = self
            .config(&*req.storage, &name)
            .await?
            .ok_or_else(|| LogicalError::invalid(format!("unknown database {name:?}")))?;
        let db = build_db(&c)
            .map_err(|e| LogicalError::invalid(format!("error creating database object: {e}")))?;
        self.replace_pool(&name, Some(Arc::new(db))).await;
        Ok(None)
    }

    /// Gives the root user a fresh password only Tresor knows. The database changes first;
    /// the config is stored after, and the pool rebuilt with the new password.
    pub async fn rotate_root(self: Arc<Self>, req: Request, f: Fields) -> Result<Option<Response>> {
        let name = f.input::<ConnNameInput>().name;
        let s = &*req.storage;
        let _guard = self.rotation.lock().await;
        let (mut c, db) = self.pool(s, &name).await?;
        if c.username.is_empty() {
            return Err(LogicalError::invalid(
                "unable to rotate root credentials: no username in configuration",
            ));
        }
        if !c.connection_url.contains("{{password}}")
            && !c.connection_url.contains("{{ password }}")
        {
            return Err(LogicalError::invalid(
                "unable to rotate root credentials: the connection_url must use {{password}}",
            ));
        }
        let new = self.password(s, req.mount.system.as_deref(), &c).await?;
        db.rotate_root(&c.username, &new, &c.root_rotation_statements)
            .await
            .map_err(|e| LogicalError::invalid(format!("failed to update user: {e}")))?;
        c.password = new.to_string();
        store::save(s, &key(&name), &c).await?;
        let fresh = build_db(&c).map_err(LogicalError::Internal)?;
        self.replace_pool(&name, Some(Arc::new(fresh))).await;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn literal_passwords_are_masked() {
        for (url, want) in [
            (
                "postgresql://{{username}}:{{password}}@h:5432/db",
                "postgresql://{{username}}:{{password}}@h:5432/db",
            ),
            (
                "postgresql://admin:hunter2@h:5432/db",
                "postgresql://admin:*****@h:5432/db",
            ),
            ("admin:hunter2@tcp(h:3306)/", "admin:*****@tcp(h:3306)/"),
            (
                "host=h user=a password=hunter2 dbname=x",
                "host=h user=a password=***** dbname=x",
            ),
            (
                "host=h password={{password}}",
                "host=h password={{password}}",
            ),
        ] {
            assert_eq!(redact_url(url, ""), want, "{url}");
        }
        assert_eq!(redact_url("x hunter2 y", "hunter2"), "x ***** y");
    }
}
