//! The database side: the plugins (PostgreSQL and the MySQL family), a connection pool per
//! configured connection, and the operations the engine runs through them.
//!
//! PostgreSQL runs a list of statements in one transaction, so a user half-created by a
//! failing statement is rolled back by the database itself. MySQL commits DDL implicitly
//! (`CREATE USER`, `GRANT`), so after a failing statement the role's `rollback_statements`
//! run, or, without them, every account of that name is dropped.
//!
//! Revoking a user also ends its sessions: PostgreSQL's `pg_terminate_backend` (after
//! `NOLOGIN`, so none can start in between), MySQL's `KILL` of each process the user owns
//! (after the drop, which refuses new logins). A revoked credential therefore stops working
//! at once, not when the application's connection happens to close.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use zeroize::Zeroizing;

use crate::dsn::{self, ConnSpec};
use crate::sql;
use crate::template::render_placeholders;

/// The database kinds Tresor speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plugin {
    Postgres,
    /// The MySQL/MariaDB family; `legacy` limits usernames to 16 characters (MySQL before
    /// 5.7, Aurora and RDS plugins of old).
    Mysql {
        legacy: bool,
    },
}

impl Plugin {
    pub fn from_name(name: &str) -> Result<Self, String> {
        Ok(match name {
            "postgresql-database-plugin" => Plugin::Postgres,
            "mysql-database-plugin" => Plugin::Mysql { legacy: false },
            "mysql-aurora-database-plugin"
            | "mysql-rds-database-plugin"
            | "mysql-legacy-database-plugin" => Plugin::Mysql { legacy: true },
            other => {
                return Err(format!(
                    "unsupported plugin_name {other:?}: postgresql-database-plugin, mysql-database-plugin, mysql-aurora-database-plugin, mysql-rds-database-plugin or mysql-legacy-database-plugin"
                ));
            }
        })
    }

    pub fn is_mysql(self) -> bool {
        matches!(self, Plugin::Mysql { .. })
    }

    /// The username template used when a connection names none.
    pub fn default_username_template(self) -> &'static str {
        match self {
            Plugin::Postgres => {
                r#"{{ printf "v-%s-%s-%s-%s" (.DisplayName | truncate 8) (.RoleName | truncate 8) (random 20) (unix_time) | truncate 63 }}"#
            }
            Plugin::Mysql { legacy: false } => {
                r#"{{ printf "v-%s-%s-%s" (.DisplayName | truncate 8) (.RoleName | truncate 8) (random 12) | truncate 32 }}"#
            }
            Plugin::Mysql { legacy: true } => {
                r#"{{ printf "v-%s-%s" (.RoleName | truncate 4) (random 9) | truncate 16 }}"#
            }
        }
    }

    /// The longest username the database takes.
    pub fn max_username(self) -> usize {
        match self {
            Plugin::Postgres => 63,
            Plugin::Mysql { legacy: false } => 32,
            Plugin::Mysql { legacy: true } => 16,
        }
    }

    /// `{{expiration}}` as the database reads it.
    pub fn expiration(self, unix: i64) -> String {
        crate::template::go_time_format("2006-01-02 15:04:05-0700", unix)
    }
}

/// Pool settings from a connection's config.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_open: usize,
    /// Idle connections kept; 0 keeps none.
    pub max_idle: usize,
    /// A connection older than this is closed instead of reused (`None`: forever).
    pub lifetime: Option<Duration>,
}

/// An error from the database, with the password scrubbed from the driver's text.
#[derive(Debug, Clone)]
pub struct DbError(pub String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn pg_err(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(&format!(": {inner}"));
                src = inner.source();
            }
            s
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: tokio-postgres has no pool, so a small one: a semaphore of `max_open` permits
// and a stack of idle clients.

struct PgPool {
    cfg: tokio_postgres::Config,
    /// The TLS connector, unless `sslmode=disable`.
    tls: Option<crate::pgtls::RustlsConnect>,
    idle: Mutex<Vec<(tokio_postgres::Client, Instant)>>,
    open: Arc<Semaphore>,
    settings: PoolSettings,
}

struct PgConn {
    client: Option<(tokio_postgres::Client, Instant)>,
    pool: Arc<PgPool>,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for PgConn {
    type Target = tokio_postgres::Client;
    fn deref(&self) -> &tokio_postgres::Client {
        &self.client.as_ref().expect("a checked-out connection").0
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        if let Some((c, born)) = self.client.take() {
            let mut idle = self.pool.idle.lock();
            if !c.is_closed()
                && idle.len() < self.pool.settings.max_idle
                && !self.pool.expired(born)
            {
                idle.push((c, born));
            }
        }
    }
}

impl PgPool {
    fn expired(&self, born: Instant) -> bool {
        self.settings.lifetime.is_some_and(|l| born.elapsed() >= l)
    }

    async fn get(self: &Arc<Self>) -> Result<PgConn, String> {
        let permit = self
            .open
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| "the connection pool is closed".to_string())?;
        loop {
            let Some((c, born)) = self.idle.lock().pop() else {
                break;
            };
            if !c.is_closed() && !self.expired(born) {
                return Ok(PgConn {
                    client: Some((c, born)),
                    pool: self.clone(),
                    _permit: permit,
                });
            }
        }
        // The connection task ends when the client is dropped or the server closes the session.
        let client = match &self.tls {
            Some(tls) => {
                let (client, connection) = self
                    .cfg
                    .connect(tls.clone())
                    .await
                    .map_err(|e| pg_err(&e))?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
            None => {
                let (client, connection) = self
                    .cfg
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(|e| pg_err(&e))?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
        };
        Ok(PgConn {
            client: Some((client, Instant::now())),
            pool: self.clone(),
            _permit: permit,
        })
    }

    /// Runs statements in one transaction; on failure the transaction is rolled back.
    /// Runs statements in one transaction, again (up to five times, with a short pause) when
    /// PostgreSQL refuses it for a conflict with a concurrent one: two GRANTs or REVOKEs on
    /// the same object at once fail with "tuple concurrently updated" (revoking a prefix of
    /// leases, or many creds at once); the transaction was rolled back, so running it again
    /// is safe.
    async fn exec_tx(self: &Arc<Self>, stmts: &[String]) -> Result<(), String> {
        let mut attempt = 0;
        loop {
            match self.exec_tx_once(stmts).await {
                Err(e) if attempt < 4 && is_conflict(&e) => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
                }
                other => return other,
            }
        }
    }

    /// One round trip: `BEGIN`, the statements and `COMMIT` go as one simple query, which
    /// PostgreSQL runs in order and stops at the first error (the rest, `COMMIT` with them,
    /// are skipped and the transaction is left aborted, so it is rolled back).
    async fn exec_tx_once(self: &Arc<Self>, stmts: &[String]) -> Result<(), String> {
        let c = self.get().await?;
        if let Err(e) = c
            .batch_execute(&batch(Some("BEGIN"), stmts, Some("COMMIT")))
            .await
        {
            let _ = c.batch_execute("ROLLBACK").await;
            return Err(pg_err(&e));
        }
        Ok(())
    }
}

/// Statements joined into one multi-statement query, with a newline before each `;` so a
/// statement ending in a `--` or `#` comment cannot swallow the next one.
fn batch(first: Option<&str>, stmts: &[String], last: Option<&str>) -> String {
    let mut q = String::with_capacity(stmts.iter().map(|s| s.len() + 3).sum::<usize>() + 16);
    for (i, s) in first
        .into_iter()
        .chain(stmts.iter().map(String::as_str))
        .chain(last)
        .enumerate()
    {
        if i > 0 {
            q.push_str("\n;\n");
        }
        q.push_str(s);
    }
    q.push('\n');
    q
}

/// Whether a PostgreSQL error is a conflict with a concurrent transaction (worth retrying).
fn is_conflict(e: &str) -> bool {
    e.contains("tuple concurrently updated")
        || e.contains("could not serialize access")
        || e.contains("deadlock detected")
}

// ---------------------------------------------------------------------------------------------

enum Inner {
    Pg(Arc<PgPool>),
    My(mysql_async::Pool),
}

/// One configured connection's pool.
pub struct Db {
    pub plugin: Plugin,
    /// Where it connects (host:port), for errors.
    pub host: String,
    inner: Inner,
    /// The root password, scrubbed from every error.
    secret: Zeroizing<String>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("plugin", &self.plugin)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// Values for statement placeholders.
pub struct Vals<'a> {
    pub name: &'a str,
    pub password: &'a str,
    pub expiration: &'a str,
}

impl Vals<'_> {
    fn render(&self, stmts: &[String]) -> Vec<String> {
        sql::split_all(stmts)
            .iter()
            .map(|s| {
                render_placeholders(
                    s,
                    &[
                        ("name", self.name),
                        ("username", self.name),
                        ("password", self.password),
                        ("expiration", self.expiration),
                    ],
                )
            })
            .collect()
    }
}

impl Db {
    /// Builds the pool (no connection is opened yet).
    pub fn new(
        plugin: Plugin,
        spec: ConnSpec,
        settings: PoolSettings,
        root_password: &str,
    ) -> Result<Db, String> {
        let host = dsn::host_of(&spec);
        let inner = match spec {
            ConnSpec::Postgres(cfg, tls) => Inner::Pg(Arc::new(PgPool {
                cfg: *cfg,
                tls: tls.build()?.1,
                idle: Mutex::new(Vec::new()),
                open: Arc::new(Semaphore::new(settings.max_open.max(1))),
                settings,
            })),
            ConnSpec::Mysql(b) => {
                let constraints = mysql_async::PoolConstraints::new(0, settings.max_open.max(1))
                    .ok_or("invalid pool size")?;
                let mut po =
                    mysql_async::PoolOpts::default()
                        .with_constraints(constraints)
                        .with_reset_connection(false)
                        .with_inactive_connection_ttl(Duration::from_secs(
                            if settings.max_idle == 0 { 1 } else { 60 },
                        ));
                if let Some(l) = settings.lifetime {
                    po = po.with_abs_conn_ttl(Some(l));
                }
                let b = (*b).pool_opts(po).stmt_cache_size(0);
                Inner::My(mysql_async::Pool::new(b))
            }
        };
        Ok(Db {
            plugin,
            host,
            inner,
            secret: Zeroizing::new(root_password.to_owned()),
        })
    }

    fn err(&self, what: &str, e: impl std::fmt::Display) -> DbError {
        DbError(dsn::scrub(&format!("{what}: {e}"), &self.secret))
    }

    async fn my_conn(&self, pool: &mysql_async::Pool) -> Result<mysql_async::Conn, String> {
        match tokio::time::timeout(dsn::CONNECT_TIMEOUT, pool.get_conn()).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("timed out after {:?}", dsn::CONNECT_TIMEOUT)),
        }
    }

    /// Opens a connection and runs a trivial query.
    pub async fn verify(&self) -> Result<(), DbError> {
        let what = format!("error verifying connection to {}", self.host);
        match &self.inner {
            Inner::Pg(p) => {
                let c = p.get().await.map_err(|e| self.err(&what, e))?;
                c.batch_execute("SELECT 1")
                    .await
                    .map_err(|e| self.err(&what, pg_err(&e)))
            }
            Inner::My(pool) => {
                use mysql_async::prelude::Queryable;
                let mut c = self.my_conn(pool).await.map_err(|e| self.err(&what, e))?;
                c.ping().await.map_err(|e| self.err(&what, e))
            }
        }
    }

    /// Runs statements (rendered with `vals`): in one transaction on PostgreSQL, one after
    /// the other on MySQL. Returns the first error.
    pub async fn exec(&self, stmts: &[String], vals: &Vals<'_>) -> Result<(), DbError> {
        let rendered = vals.render(stmts);
        self.exec_rendered(&rendered).await.map_err(|e| {
            // The statement may echo the new password: scrub that too.
            DbError(dsn::scrub(&e.0, vals.password))
        })
    }

    async fn exec_rendered(&self, stmts: &[String]) -> Result<(), DbError> {
        match &self.inner {
            Inner::Pg(p) => p
                .exec_tx(stmts)
                .await
                .map_err(|e| self.err("error running statements", e)),
            Inner::My(pool) => {
                use mysql_async::prelude::Queryable;
                let mut c = self
                    .my_conn(pool)
                    .await
                    .map_err(|e| self.err(&format!("error connecting to {}", self.host), e))?;
                if stmts.is_empty() {
                    return Ok(());
                }
                // One round trip; the server stops at the first statement that fails.
                c.query_drop(batch(None, stmts, None))
                    .await
                    .map_err(|e| self.err("error running statements", e))
            }
        }
    }

    /// Creates a user with the role's creation statements; after a failure the user is
    /// rolled back (see the module docs) and the creation's error returned.
    pub async fn create_user(
        &self,
        creation: &[String],
        rollback: &[String],
        vals: &Vals<'_>,
    ) -> Result<(), DbError> {
        let Err(e) = self.exec(creation, vals).await else {
            return Ok(());
        };
        if !rollback.is_empty() {
            if let Err(r) = self.exec(rollback, vals).await {
                tracing::warn!(error = %r, "rollback statements failed");
            }
        } else if self.plugin.is_mysql()
            && let Err(r) = self.mysql_drop_all(vals.name).await
        {
            tracing::warn!(error = %r, "dropping a half-created user failed");
        }
        Err(e)
    }

    /// The hosts of every MySQL account named `name`.
    async fn mysql_hosts(
        &self,
        c: &mut mysql_async::Conn,
        name: &str,
    ) -> Result<Vec<String>, DbError> {
        use mysql_async::prelude::Queryable;
        c.exec("SELECT Host FROM mysql.user WHERE User = ?", (name,))
            .await
            .map_err(|e| self.err("error listing the user's accounts", e))
    }

    async fn mysql_drop_all(&self, name: &str) -> Result<(), DbError> {
        use mysql_async::prelude::Queryable;
        let Inner::My(pool) = &self.inner else {
            return Ok(());
        };
        let mut c = self
            .my_conn(pool)
            .await
            .map_err(|e| self.err(&format!("error connecting to {}", self.host), e))?;
        for host in self.mysql_hosts(&mut c, name).await? {
            c.query_drop(format!(
                "DROP USER {}@{}",
                sql::literal(name, true),
                sql::literal(&host, true)
            ))
            .await
            .map_err(|e| self.err("error dropping the user", e))?;
        }
        Ok(())
    }

    /// Revokes a user: ends its sessions and runs the revocation statements (or the
    /// plugin's default, which drops the user). A user that no longer exists is revoked.
    pub async fn revoke_user(&self, name: &str, revocation: &[String]) -> Result<(), DbError> {
        let vals = Vals {
            name,
            password: "",
            expiration: "",
        };
        match &self.inner {
            Inner::Pg(p) => {
                let ident = sql::pg_ident(name);
                let c = p
                    .get()
                    .await
                    .map_err(|e| self.err(&format!("error connecting to {}", self.host), e))?;
                let exists = c
                    .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
                    .await
                    .map_err(|e| self.err("error looking up the user", pg_err(&e)))?
                    .is_some();
                if exists {
                    // No new sessions, then none of the old ones.
                    let _ = c
                        .batch_execute(&format!("ALTER ROLE {ident} NOLOGIN"))
                        .await;
                    self.pg_terminate(&c, name).await?;
                }
                drop(c);
                if !revocation.is_empty() {
                    self.exec(revocation, &vals).await?;
                } else if exists {
                    let stmts = vec![
                        format!("REASSIGN OWNED BY {ident} TO CURRENT_USER"),
                        format!("DROP OWNED BY {ident}"),
                        format!("DROP ROLE IF EXISTS {ident}"),
                    ];
                    self.exec_rendered(&stmts).await?;
                }
                Ok(())
            }
            Inner::My(pool) => {
                use mysql_async::prelude::Queryable;
                if revocation.is_empty() {
                    self.mysql_drop_all(name).await?;
                } else {
                    self.exec(revocation, &vals).await?;
                }
                let mut c = self
                    .my_conn(pool)
                    .await
                    .map_err(|e| self.err(&format!("error connecting to {}", self.host), e))?;
                let ids: Vec<u64> = c
                    .exec(
                        "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?",
                        (name,),
                    )
                    .await
                    .map_err(|e| self.err("error listing the user's sessions", e))?;
                for id in ids {
                    // The session may have ended by itself in between.
                    let _ = c.query_drop(format!("KILL {id}")).await;
                }
                Ok(())
            }
        }
    }

    async fn pg_terminate(&self, c: &tokio_postgres::Client, name: &str) -> Result<(), DbError> {
        c.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()",
            &[&name],
        )
        .await
        .map(|_| ())
        .map_err(|e| self.err("error ending the user's sessions", pg_err(&e)))
    }

    /// Sets a user's password: the given statements, or the plugin's default.
    pub async fn set_password(
        &self,
        name: &str,
        password: &str,
        stmts: &[String],
    ) -> Result<(), DbError> {
        let vals = Vals {
            name,
            password,
            expiration: "",
        };
        if !stmts.is_empty() {
            return self.exec(stmts, &vals).await;
        }
        let pw = Zeroizing::new(sql::literal(password, self.plugin.is_mysql()));
        let stmts = match &self.inner {
            Inner::Pg(_) => vec![format!(
                "ALTER ROLE {} WITH PASSWORD {}",
                sql::pg_ident(name),
                *pw
            )],
            Inner::My(pool) => {
                let mut c = self
                    .my_conn(pool)
                    .await
                    .map_err(|e| self.err(&format!("error connecting to {}", self.host), e))?;
                let hosts = self.mysql_hosts(&mut c, name).await?;
                // Back to the pool before the statements take one (max_open may be 1).
                drop(c);
                if hosts.is_empty() {
                    return Err(DbError(format!("user {name:?} does not exist")));
                }
                hosts
                    .iter()
                    .map(|h| {
                        format!(
                            "ALTER USER {}@{} IDENTIFIED BY {}",
                            sql::literal(name, true),
                            sql::literal(h, true),
                            *pw
                        )
                    })
                    .collect()
            }
        };
        let out = self.exec_rendered(&stmts).await;
        out.map_err(|e| DbError(dsn::scrub(&e.0, password)))
    }

    /// Changes the password of the user this pool connects as (root rotation).
    pub async fn rotate_root(
        &self,
        username: &str,
        password: &str,
        stmts: &[String],
    ) -> Result<(), DbError> {
        if !stmts.is_empty() {
            let vals = Vals {
                name: username,
                password,
                expiration: "",
            };
            return self.exec(stmts, &vals).await;
        }
        let pw = Zeroizing::new(sql::literal(password, self.plugin.is_mysql()));
        let stmt = match &self.inner {
            Inner::Pg(_) => format!("ALTER ROLE CURRENT_USER WITH PASSWORD {}", *pw),
            Inner::My(pool) => {
                // The account this session authenticated as (`user@host`): MariaDB takes
                // `ALTER USER CURRENT_USER()` and silently changes nothing.
                use mysql_async::prelude::Queryable;
                let mut c = self
                    .my_conn(pool)
                    .await
                    .map_err(|e| self.err(&format!("error connecting to {}", self.host), e))?;
                let me: Option<String> = c
                    .query_first("SELECT CURRENT_USER()")
                    .await
                    .map_err(|e| self.err("error looking up the current user", e))?;
                let me = me.unwrap_or_default();
                let (user, host) = me.rsplit_once('@').unwrap_or((me.as_str(), "%"));
                format!(
                    "ALTER USER {}@{} IDENTIFIED BY {}",
                    sql::literal(user, true),
                    sql::literal(host, true),
                    *pw
                )
            }
        };
        let out = self.exec_rendered(&[stmt]).await;
        out.map_err(|e| DbError(dsn::scrub(&e.0, password)))
    }

    /// Closes every connection.
    pub async fn close(&self) {
        match &self.inner {
            Inner::Pg(p) => {
                p.open.close();
                p.idle.lock().clear();
            }
            Inner::My(pool) => {
                let pool = pool.clone();
                let _ = tokio::time::timeout(Duration::from_secs(5), pool.disconnect()).await;
            }
        }
    }
}

#[cfg(test)]
mod batch_tests {
    use super::batch;

    #[test]
    fn a_comment_at_a_statement_end_cannot_swallow_the_next() {
        let q = batch(
            Some("BEGIN"),
            &["CREATE ROLE a -- note".into(), "GRANT x TO a # note".into()],
            Some("COMMIT"),
        );
        assert_eq!(
            q,
            "BEGIN\n;\nCREATE ROLE a -- note\n;\nGRANT x TO a # note\n;\nCOMMIT\n"
        );
        assert_eq!(batch(None, &["SELECT 1".into()], None), "SELECT 1\n");
    }
}
