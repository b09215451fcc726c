//! `database-creds`: read a leased credential from a database role, against a real database
//! server the caller names (issue 16). Each request makes the server create a database user
//! (the role's creation statements run on the database) and register a lease for it.
//!
//! Setup enables the `database` engine at a path unique to the run, writes `config/bench`
//! (PostgreSQL by default, `verify_connection` on, so a wrong URL fails setup) and
//! `roles/bench`; cleanup disables the mount, which revokes every lease the run made and so
//! drops every user it created. The configuration carries the connection details:
//!
//! ```hcl
//! test "database-creds" "pg" {
//!   config {
//!     connection_url = "postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable"
//!     username       = "admin"
//!     password       = "pw"
//!   }
//! }
//! ```

use http::{HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::{Value, json};
use tresor_client::MountInput;

use bytes::Bytes;

use super::{BoxFuture, Kind, SetupContext, Workload};
use crate::client::{Api, Target};
use crate::error::BenchError;

/// The `database-creds` registry entry.
pub const CREDS: Kind = Kind {
    name: "database-creds",
    aliases: &["database_secret", "postgresql_secret"],
    summary: "read creds/:role of a database mount against a real database (connection_url, username, password)",
    needs_token: true,
    check_config: check_database,
    setup: setup_creds,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseConfig {
    /// With `{{username}}` and `{{password}}` placeholders, as Vault takes it. Required (at
    /// setup: a config file may leave it to the command line's workload defaults).
    #[serde(default)]
    connection_url: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default = "default_plugin")]
    plugin_name: String,
    #[serde(default)]
    creation_statements: Option<Vec<String>>,
    #[serde(default = "default_ttl")]
    default_ttl: String,
    /// The connection's pool size (Vault's default, 4, when not given).
    #[serde(default)]
    max_open_connections: Option<u32>,
}

fn default_plugin() -> String {
    "postgresql-database-plugin".into()
}

fn default_ttl() -> String {
    "1h".into()
}

/// A login role that may read every table: what an application's read-only credential is.
const PG_CREATION: &[&str] = &[
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'",
    "GRANT pg_read_all_data TO \"{{name}}\"",
];
const MYSQL_CREATION: &[&str] = &[
    "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'",
    "GRANT SELECT ON *.* TO '{{name}}'@'%'",
];

fn check_database(v: &Value) -> Result<(), String> {
    let c: DatabaseConfig = super::parse_config(v)?;
    if c.creation_statements.as_ref().is_some_and(|s| s.is_empty()) {
        return Err("creation_statements must not be empty".into());
    }
    Ok(())
}

fn creation_statements(c: &DatabaseConfig) -> Vec<String> {
    if let Some(s) = &c.creation_statements {
        return s.clone();
    }
    let defaults = if c.plugin_name.starts_with("mysql") {
        MYSQL_CREATION
    } else {
        PG_CREATION
    };
    defaults.iter().map(|s| (*s).to_owned()).collect()
}

fn setup_creds(ctx: SetupContext) -> BoxFuture<'static, Result<Box<dyn Workload>, BenchError>> {
    Box::pin(async move {
        let cfg: DatabaseConfig = super::config_of(&ctx)?;
        if cfg.connection_url.trim().is_empty() {
            return Err(BenchError::WorkloadConfig {
                workload: ctx.name.clone(),
                message: "connection_url is required: database-creds needs a database server \
                          (give it in a -config file's config block)"
                    .into(),
            });
        }
        let token = ctx
            .api
            .token()
            .ok_or_else(|| BenchError::NoToken(ctx.name.clone()))?
            .header()?;
        let mount = ctx.unique.clone();
        let input = MountInput {
            engine: "database".into(),
            description: "tresor bench (removed when the run ends)".into(),
            ..MountInput::default()
        };
        ctx.api
            .check(
                &format!("{}: enabling database at {mount}/", ctx.name),
                ctx.api.client().mount(&mount, &input),
            )
            .await?;
        let prepare = [
            ("config/bench", {
                let mut c = json!({
                    "plugin_name": cfg.plugin_name,
                    "connection_url": cfg.connection_url,
                    "username": cfg.username,
                    "password": cfg.password,
                    "allowed_roles": ["bench"],
                    "verify_connection": true,
                });
                if let Some(n) = cfg.max_open_connections {
                    c["max_open_connections"] = json!(n);
                }
                c
            }),
            (
                "roles/bench",
                json!({
                    "db_name": "bench",
                    "creation_statements": creation_statements(&cfg),
                    "default_ttl": cfg.default_ttl,
                    "max_ttl": "24h",
                }),
            ),
        ];
        for (path, body) in prepare {
            let full = format!("{mount}/{path}");
            if let Err(e) = ctx
                .api
                .expect_ok(
                    &format!("{}: writing {full}", ctx.name),
                    Method::POST,
                    &full,
                    Some(&body),
                    None,
                )
                .await
            {
                let _ = ctx.api.client().unmount(&mount).await;
                return Err(e);
            }
        }
        let path = format!("/v1/{mount}/creds/bench");
        let uri: Uri = path.parse().map_err(|_| BenchError::Server {
            context: "building a request".into(),
            message: format!("invalid path {path:?}"),
        })?;
        Ok(Box::new(Creds { mount, uri, token }) as Box<dyn Workload>)
    })
}

/// `database-creds` after setup: `GET creds/bench`, a new user and lease each time.
struct Creds {
    mount: String,
    uri: Uri,
    token: HeaderValue,
}

#[async_trait::async_trait]
impl Workload for Creds {
    fn request(&self, target: &Target, _worker: usize, _seq: u64) -> Request<Full<Bytes>> {
        target.request(
            Method::GET,
            self.uri.clone(),
            Some(&self.token),
            Bytes::new(),
        )
    }

    /// Disabling the mount revokes every lease of the run, which drops every user it made.
    async fn cleanup(&self, api: &Api) -> Result<(), BenchError> {
        api.check(
            &format!("disabling {}/ (revoking its leases)", self.mount),
            api.client().unmount(&self.mount),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_checked() {
        let ok = json!({"connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres", "username": "a", "password": "b"});
        assert!(check_database(&ok).is_ok());
        let mut empty = ok.clone();
        empty["creation_statements"] = json!([]);
        assert!(check_database(&empty).is_err());
        let mut unknown = ok.clone();
        unknown["nope"] = json!(1);
        assert!(check_database(&unknown).is_err());
    }

    #[test]
    fn default_statements_follow_the_plugin() {
        let mut c: DatabaseConfig = super::super::parse_config(
            &json!({"connection_url": "x", "username": "a", "password": "b"}),
        )
        .unwrap();
        assert!(creation_statements(&c)[0].starts_with("CREATE ROLE"));
        c.plugin_name = "mysql-database-plugin".into();
        assert!(creation_statements(&c)[0].starts_with("CREATE USER"));
    }
}
