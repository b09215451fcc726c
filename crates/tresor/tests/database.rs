//! Issue 16 end to end: the database secrets engine on a real `tresor server -dev`, driven with
//! the `bao` CLI, against a real PostgreSQL 15 and a real MariaDB started on 127.0.0.1 (Debian
//! packages; `.ci/run` installs them), checked with the databases' own clients (`psql`,
//! `mariadb`).
//!
//! For each database: an unreachable database is refused naming the host and nothing is
//! stored; the admin connection is configured and its password rotated (the old one no longer
//! connects); `database/creds/readonly` gives a user that can SELECT in one schema and not
//! INSERT; `bao lease revoke` drops the user and ends a session it had open; a short lease
//! expires and the user is dropped within a few expiry ticks; `lease revoke -prefix` drops
//! them all; a static role's password changes on `rotate-role` and only the new one works;
//! a role with a SQL syntax error fails cleanly and leaves no user; a role outside
//! `allowed_roles` is refused with 403.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, free_port, run};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A database under test: how to reach it as an administrator that rotation never touches
/// (PostgreSQL's local socket with trust, MariaDB's root over its socket), and as any user
/// over TCP the way an application would.
enum Db {
    Postgres {
        dir: PathBuf,
        port: u16,
    },
    Maria {
        child: Child,
        dir: PathBuf,
        port: u16,
    },
}

impl Drop for Db {
    fn drop(&mut self) {
        match self {
            Db::Postgres { dir, .. } => {
                // Stop by the postmaster's PID (first line of postmaster.pid): SIGINT is
                // PostgreSQL's fast shutdown. Bounded: SIGKILL after 10 s.
                let pid = std::fs::read_to_string(dir.join("pg/postmaster.pid"))
                    .ok()
                    .and_then(|t| t.lines().next().map(str::to_owned));
                if let Some(pid) = pid {
                    let _ = Command::new("kill").args(["-INT", &pid]).status();
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    if Path::new(&format!("/proc/{pid}")).exists() {
                        let _ = Command::new("kill").args(["-KILL", &pid]).status();
                    }
                }
            }
            Db::Maria { child, .. } => {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn start_postgres(dir: &Path) -> Db {
    assert!(
        Path::new(PG_BIN).join("initdb").exists(),
        "PostgreSQL 15 is not installed (apt-get install postgresql; .ci/run does)"
    );
    let t = dir.display().to_string();
    run(Command::new("chown").args(["-R", "postgres", &t])).expect(0, "chown");
    std::fs::write(dir.join("pw"), "pw\n").unwrap();
    run(Command::new("chown").args(["postgres", &format!("{t}/pw")])).expect(0, "chown pw");
    let o = run(Command::new("runuser").args([
        "-u",
        "postgres",
        "--",
        &format!("{PG_BIN}/initdb"),
        "-D",
        &format!("{t}/pg"),
        "-U",
        "admin",
        &format!("--pwfile={t}/pw"),
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--no-sync",
    ]));
    assert_eq!(o.code, 0, "initdb\n{o}");
    // TLS (issue 16): a CA of the test's own and a server certificate it signs for the name
    // db.example only (so verify-full to 127.0.0.1 must fail, verify-ca pass).
    std::fs::write(dir.join("san.cnf"), "subjectAltName=DNS:db.example\n").unwrap();
    for args in [
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=PG test CA",
            "-days",
            "2",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
        ][..],
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=db.example",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ][..],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "server.crt",
            "-extfile",
            "san.cnf",
        ][..],
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=Other CA",
            "-days",
            "2",
            "-keyout",
            "other-key.pem",
            "-out",
            "other-ca.pem",
        ][..],
    ] {
        run(Command::new("openssl").args(args).current_dir(dir)).expect(0, "openssl");
    }
    run(Command::new("chown").args([
        "postgres",
        &format!("{t}/server.key"),
        &format!("{t}/server.crt"),
    ]))
    .expect(0, "chown server key");
    run(Command::new("chmod").args(["600", &format!("{t}/server.key")])).expect(0, "chmod");
    let port = free_port();
    let o = run(Command::new("runuser").args([
        "-u",
        "postgres",
        "--",
        &format!("{PG_BIN}/pg_ctl"),
        "-D",
        &format!("{t}/pg"),
        "-l",
        &format!("{t}/pg.log"),
        "-w",
        "-t",
        "20",
        "-o",
        &format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {t} -c fsync=off -c ssl=on -c ssl_cert_file={t}/server.crt -c ssl_key_file={t}/server.key"
        ),
        "start",
    ]));
    assert_eq!(o.code, 0, "pg_ctl start\n{o}");
    let db = Db::Postgres {
        dir: dir.to_path_buf(),
        port,
    };
    db.admin("postgres", "CREATE DATABASE app");
    db.admin(
        "app",
        "CREATE SCHEMA data; CREATE TABLE data.items (id int); INSERT INTO data.items VALUES (1), (2);
         CREATE SCHEMA other; CREATE TABLE other.secrets (id int);
         CREATE ROLE svc WITH LOGIN PASSWORD 'svc-initial';",
    );
    db
}

fn start_mariadb(dir: &Path) -> Db {
    let t = dir.display().to_string();
    let o = run(Command::new("mariadb-install-db").args([
        "--no-defaults",
        &format!("--datadir={t}/data"),
        "--user=root",
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
    ]));
    assert_eq!(
        o.code, 0,
        "mariadb-install-db (apt-get install mariadb-server; .ci/run does)\n{o}"
    );
    let port = free_port();
    let log = std::fs::File::create(dir.join("mariadbd.out")).unwrap();
    let child = Command::new("mariadbd")
        .args([
            "--no-defaults",
            &format!("--datadir={t}/data"),
            "--user=root",
            "--bind-address=127.0.0.1",
            &format!("--port={port}"),
            &format!("--socket={t}/mysql.sock"),
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=64M",
            &format!("--log-error={t}/err.log"),
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start mariadbd");
    let db = Db::Maria {
        child,
        dir: dir.to_path_buf(),
        port,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let o = run(Command::new("mariadb-admin").args([
            "--no-defaults",
            "-uroot",
            &format!("--socket={t}/mysql.sock"),
            "ping",
        ]));
        if o.code == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "mariadbd not up within 20 s:\n{}",
            std::fs::read_to_string(dir.join("err.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    db.admin(
        "",
        "CREATE USER 'admin'@'%' IDENTIFIED BY 'pw';
         GRANT ALL PRIVILEGES ON *.* TO 'admin'@'%' WITH GRANT OPTION;
         CREATE DATABASE data; CREATE TABLE data.items (id int); INSERT INTO data.items VALUES (1), (2);
         CREATE DATABASE other; CREATE TABLE other.secrets (id int);
         CREATE USER 'svc'@'%' IDENTIFIED BY 'svc-initial';",
    );
    db
}

impl Db {
    fn port(&self) -> u16 {
        match self {
            Db::Postgres { port, .. } | Db::Maria { port, .. } => *port,
        }
    }

    fn plugin(&self) -> &'static str {
        match self {
            Db::Postgres { .. } => "postgresql-database-plugin",
            Db::Maria { .. } => "mysql-database-plugin",
        }
    }

    fn connection_url(&self, port: u16) -> String {
        match self {
            Db::Postgres { .. } => {
                format!(
                    "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{port}/app?sslmode=disable"
                )
            }
            Db::Maria { .. } => format!("{{{{username}}}}:{{{{password}}}}@tcp(127.0.0.1:{port})/"),
        }
    }

    /// SQL that creates a user allowed to SELECT in one schema.
    /// (The first statement ends in a comment: statements go to the database as one
    /// query, and the comment must not swallow the next statement.)
    fn readonly_creation(&self) -> &'static str {
        match self {
            Db::Postgres { .. } => {
                "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}' -- the leased user\n; GRANT USAGE ON SCHEMA data TO \"{{name}}\"; GRANT SELECT ON ALL TABLES IN SCHEMA data TO \"{{name}}\";"
            }
            Db::Maria { .. } => {
                "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}' -- the leased user\n; GRANT SELECT ON data.* TO '{{name}}'@'%' # read only;"
            }
        }
    }

    /// Creates the user, then fails on a syntax error.
    fn broken_creation(&self) -> &'static str {
        match self {
            Db::Postgres { .. } => {
                "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}'; GRANT SELEC ON ALL TABLES IN SCHEMA data TO \"{{name}}\";"
            }
            Db::Maria { .. } => {
                "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'; GRANT SELEC ON data.* TO '{{name}}'@'%';"
            }
        }
    }

    /// Runs SQL as the untouchable administrator; must succeed; returns stdout.
    fn admin(&self, database: &str, sql: &str) -> String {
        let o = match self {
            Db::Postgres { dir, port } => run(Command::new("psql").args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &dir.display().to_string(),
                "-p",
                &port.to_string(),
                "-U",
                "admin",
                "-d",
                database,
                "-tAc",
                sql,
            ])),
            Db::Maria { dir, .. } => {
                let mut c = Command::new("mariadb");
                c.args([
                    "--no-defaults",
                    "-uroot",
                    &format!("--socket={}/mysql.sock", dir.display()),
                    "-N",
                    "-B",
                    "-e",
                    sql,
                ]);
                if !database.is_empty() {
                    c.arg(database);
                }
                run(&mut c)
            }
        };
        assert_eq!(o.code, 0, "admin SQL {sql:?}\n{o}");
        o.stdout.trim().to_owned()
    }

    /// A client command connecting over TCP as `user`.
    fn user_cmd(&self, user: &str, password: &str, sql: &str) -> Command {
        match self {
            Db::Postgres { port, .. } => {
                let mut c = Command::new("psql");
                c.env("PGPASSWORD", password)
                    .env("PGCONNECT_TIMEOUT", "10")
                    .args([
                        "-X",
                        "-q",
                        "-v",
                        "ON_ERROR_STOP=1",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &port.to_string(),
                        "-U",
                        user,
                        "-d",
                        "app",
                        "-tAc",
                        sql,
                    ]);
                c
            }
            Db::Maria { port, .. } => {
                let mut c = Command::new("mariadb");
                c.env("MYSQL_PWD", password).args([
                    "--no-defaults",
                    "--protocol=TCP",
                    "-h127.0.0.1",
                    &format!("-P{port}"),
                    &format!("-u{user}"),
                    "--connect-timeout=10",
                    "-N",
                    "-B",
                    "-e",
                    sql,
                ]);
                c
            }
        }
    }

    fn as_user(&self, user: &str, password: &str, sql: &str) -> common::Out {
        run(&mut self.user_cmd(user, password, sql))
    }

    fn select_items(&self) -> &'static str {
        match self {
            Db::Postgres { .. } => "SELECT count(*) FROM data.items",
            Db::Maria { .. } => "SELECT count(*) FROM data.items",
        }
    }

    fn user_exists(&self, name: &str) -> bool {
        let n = match self {
            Db::Postgres { .. } => self.admin(
                "app",
                &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{name}'"),
            ),
            Db::Maria { .. } => self.admin(
                "",
                &format!("SELECT count(*) FROM mysql.user WHERE User = '{name}'"),
            ),
        };
        n != "0"
    }

    fn users_like(&self, pattern: &str) -> usize {
        let n = match self {
            Db::Postgres { .. } => self.admin(
                "app",
                &format!("SELECT count(*) FROM pg_roles WHERE rolname LIKE '{pattern}'"),
            ),
            Db::Maria { .. } => self.admin(
                "",
                &format!("SELECT count(*) FROM mysql.user WHERE User LIKE '{pattern}'"),
            ),
        };
        n.parse().unwrap()
    }

    fn sessions_of(&self, name: &str) -> usize {
        let n = match self {
            Db::Postgres { .. } => self.admin(
                "app",
                &format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{name}'"),
            ),
            Db::Maria { .. } => self.admin(
                "",
                &format!(
                    "SELECT count(*) FROM information_schema.PROCESSLIST WHERE USER = '{name}'"
                ),
            ),
        };
        n.parse().unwrap()
    }

    /// A session as `user` that would last a minute, started in the background.
    fn long_session(&self, user: &str, password: &str) -> Child {
        let sql = match self {
            Db::Postgres { .. } => "SELECT pg_sleep(60)",
            Db::Maria { .. } => "SELECT SLEEP(60)",
        };
        let child = self
            .user_cmd(user, password, sql)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a client session");
        wait_for(Duration::from_secs(10), "the session to appear", || {
            self.sessions_of(user) > 0
        });
        child
    }
}

/// Polls `cond` until it holds, failing the test after `limit`.
fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if cond() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Kills a child still running (a failed test must not leave a client behind).
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn creds(s: &Server, role: &str) -> (String, String, String) {
    let v = s
        .bao_as(
            "root",
            &["read", "-format=json", &format!("database/creds/{role}")],
        )
        .expect(0, "read creds")
        .json();
    (
        v["data"]["username"].as_str().unwrap().to_owned(),
        v["data"]["password"].as_str().unwrap().to_owned(),
        v["lease_id"].as_str().unwrap().to_owned(),
    )
}

fn scenario(db: &Db) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    s.bao_as("root", &["secrets", "enable", "database"])
        .expect(0, "secrets enable database");
    let plugin = format!("plugin_name={}", db.plugin());

    // An unreachable database: a 400 naming the host, and nothing stored.
    let dead = free_port();
    let o = s.bao_as(
        "root",
        &[
            "write",
            "database/config/dead",
            &plugin,
            &format!("connection_url={}", db.connection_url(dead)),
            "username=admin",
            "password=pw",
            "allowed_roles=*",
        ],
    );
    assert_eq!(o.code, 2, "{o}");
    assert!(o.stderr.contains(&format!("127.0.0.1:{dead}")), "{o}");
    assert!(
        !o.stderr.contains("pw@") && !o.stderr.contains(":pw"),
        "{o}"
    );
    let o = s.bao_as("root", &["read", "database/config/dead"]);
    assert_eq!(o.code, 2, "nothing stored: {o}");

    // A system password policy (sys/policies/password) the connection's passwords follow.
    std::fs::write(
        dir.path().join("dbpw.hcl"),
        "length = 24\nrule \"charset\" {\n  charset = \"abcdefghjkmnpqrstuvwxyz\"\n  min-chars = 4\n}\nrule \"charset\" {\n  charset = \"23456789\"\n  min-chars = 4\n}\n",
    )
    .unwrap();
    s.bao_as(
        "root",
        &[
            "write",
            "sys/policies/password/dbpw",
            &format!("policy=@{}", dir.path().join("dbpw.hcl").display()),
        ],
    )
    .expect(0, "write password policy");
    // Configure with the admin user.
    s.bao_as(
        "root",
        &[
            "write",
            "database/config/db",
            &plugin,
            &format!("connection_url={}", db.connection_url(db.port())),
            "username=admin",
            "password=pw",
            "allowed_roles=readonly,short,broken,svc",
            "max_open_connections=3",
            "password_policy=dbpw",
        ],
    )
    .expect(0, "write config");
    let cfg = s
        .bao_as("root", &["read", "-format=json", "database/config/db"])
        .expect(0, "read config")
        .json();
    assert_eq!(cfg["data"]["plugin_name"], db.plugin());
    assert_eq!(cfg["data"]["connection_details"]["username"], "admin");
    assert!(!cfg.to_string().contains("\"pw\""), "password shown: {cfg}");
    let list = s
        .bao_as("root", &["list", "-format=json", "database/config"])
        .expect(0, "list")
        .json();
    assert_eq!(list, serde_json::json!(["db"]));

    // rotate-root: afterwards the old password no longer connects.
    db.as_user("admin", "pw", "SELECT 1")
        .expect(0, "admin connects before rotation");
    s.bao_as("root", &["write", "-f", "database/rotate-root/db"])
        .expect(0, "rotate-root");
    let o = db.as_user("admin", "pw", "SELECT 1");
    assert_ne!(o.code, 0, "the old admin password still connects\n{o}");
    // reset rebuilds the pool from the stored (rotated) config, which still works.
    s.bao_as("root", &["write", "-f", "database/reset/db"])
        .expect(0, "reset");

    // A role granting SELECT on one schema.
    s.bao_as(
        "root",
        &[
            "write",
            "database/roles/readonly",
            "db_name=db",
            &format!("creation_statements={}", db.readonly_creation()),
            "default_ttl=1h",
            "max_ttl=24h",
        ],
    )
    .expect(0, "write role");
    let (user, pw, lease) = creds(&s, "readonly");
    // Generated from the system policy: 24 characters of its charsets, 4 digits at least.
    assert_eq!(pw.chars().count(), 24, "{pw}");
    assert!(
        pw.chars()
            .all(|c| "abcdefghjkmnpqrstuvwxyz23456789".contains(c)),
        "{pw}"
    );
    assert!(pw.chars().filter(char::is_ascii_digit).count() >= 4, "{pw}");
    assert!(db.user_exists(&user));
    let o = db
        .as_user(&user, &pw, db.select_items())
        .expect(0, "SELECT as the new user");
    assert_eq!(o.stdout.trim(), "2");
    let o = db.as_user(&user, &pw, "INSERT INTO data.items VALUES (3)");
    assert_ne!(o.code, 0, "INSERT must be refused\n{o}");
    let o = db.as_user(&user, &pw, "SELECT count(*) FROM other.secrets");
    assert_ne!(o.code, 0, "another schema must be refused\n{o}");

    // Revoking the lease drops the user and ends the session it had open.
    let mut session = Reap(db.long_session(&user, &pw));
    let start = Instant::now();
    s.bao_as("root", &["lease", "revoke", &lease])
        .expect(0, "lease revoke");
    wait_for(Duration::from_secs(10), "the session to end", || {
        matches!(session.0.try_wait(), Ok(Some(_)))
    });
    let ended_after = start.elapsed();
    assert!(ended_after < Duration::from_secs(30));
    assert!(!db.user_exists(&user), "user {user} still exists");
    assert_eq!(db.sessions_of(&user), 0);
    assert_ne!(
        db.as_user(&user, &pw, "SELECT 1").code,
        0,
        "revoked user connects"
    );

    // A lease that expires drops the user within a few expiry ticks (one per second).
    s.bao_as(
        "root",
        &[
            "write",
            "database/roles/short",
            "db_name=db",
            &format!("creation_statements={}", db.readonly_creation()),
            "default_ttl=2s",
            "max_ttl=2s",
        ],
    )
    .expect(0, "write short role");
    let (short_user, _, _) = creds(&s, "short");
    assert!(db.user_exists(&short_user));
    let gone_after = wait_for(
        Duration::from_secs(5),
        "the expired user to be dropped (2 s TTL, expiry ticks every second)",
        || !db.user_exists(&short_user),
    );
    eprintln!(
        "{}: expired lease's user dropped after {gone_after:?}",
        db.plugin()
    );

    // Revoking by prefix drops every user of the role.
    let users: Vec<String> = (0..3).map(|_| creds(&s, "readonly").0).collect();
    for u in &users {
        assert!(db.user_exists(u));
    }
    s.bao_as(
        "root",
        &["lease", "revoke", "-prefix", "database/creds/readonly"],
    )
    .expect(0, "revoke -prefix");
    for u in &users {
        assert!(!db.user_exists(u), "{u} survived revoke -prefix");
    }

    // A static role rotates on rotate-role; only the newest password works.
    db.as_user("svc", "svc-initial", "SELECT 1")
        .expect(0, "svc connects with its initial password");
    s.bao_as(
        "root",
        &[
            "write",
            "database/static-roles/svc",
            "db_name=db",
            "username=svc",
            "rotation_period=1h",
        ],
    )
    .expect(0, "write static role");
    let read_static = || {
        let v = s
            .bao_as(
                "root",
                &["read", "-format=json", "database/static-creds/svc"],
            )
            .expect(0, "static-creds")
            .json();
        assert_eq!(v["data"]["username"], "svc");
        assert!(v["data"]["ttl"].as_i64().unwrap() > 3500, "{v}");
        v["data"]["password"].as_str().unwrap().to_owned()
    };
    let p1 = read_static();
    assert_ne!(db.as_user("svc", "svc-initial", "SELECT 1").code, 0);
    db.as_user("svc", &p1, "SELECT 1").expect(0, "svc with p1");
    s.bao_as("root", &["write", "-f", "database/rotate-role/svc"])
        .expect(0, "rotate-role");
    let p2 = read_static();
    assert_ne!(p1, p2);
    assert_ne!(db.as_user("svc", &p1, "SELECT 1").code, 0, "p1 still works");
    db.as_user("svc", &p2, "SELECT 1").expect(0, "svc with p2");

    // A syntax error: the creds call fails cleanly and leaves no user behind.
    s.bao_as(
        "root",
        &[
            "write",
            "database/roles/broken",
            "db_name=db",
            &format!("creation_statements={}", db.broken_creation()),
        ],
    )
    .expect(0, "write broken role");
    let before = db.users_like("%broken%");
    let o = s.bao_as("root", &["read", "database/creds/broken"]);
    assert_eq!(o.code, 2, "{o}");
    assert!(o.stderr.contains("error creating the user"), "{o}");
    assert_eq!(
        db.users_like("%broken%"),
        before,
        "a half-created user was left"
    );
    assert_eq!(before, 0);

    // A role the connection does not allow: 403.
    s.bao_as(
        "root",
        &[
            "write",
            "database/roles/intruder",
            "db_name=db",
            &format!("creation_statements={}", db.readonly_creation()),
        ],
    )
    .expect(0, "write intruder role");
    let (code, body) = s.curl("GET", "database/creds/intruder", None, Some("root"));
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("not an allowed role"), "{body}");
    assert_eq!(db.users_like("%intruder%"), 0);

    // Deleting the connection closes its pool; the admin's sessions go away.
    s.bao_as("root", &["delete", "database/config/db"])
        .expect(0, "delete config");
    let o = s.bao_as("root", &["read", "database/config/db"]);
    assert_eq!(o.code, 2, "{o}");
}

#[test]
fn postgresql_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let db = start_postgres(dir.path());
    scenario(&db);
}

/// Issue 16: TLS to PostgreSQL in libpq's terms. Whether Tresor's own session used TLS is
/// recorded by the role's creation statements (`pg_stat_ssl` of the session running them).
#[test]
fn postgresql_over_tls_as_sslmode_says() {
    let dir = tempfile::tempdir().unwrap();
    let db = start_postgres(dir.path());
    let Db::Postgres { port, .. } = &db else {
        unreachable!()
    };
    db.admin(
        "app",
        "CREATE TABLE data.sessions (who text, tls boolean); GRANT INSERT ON data.sessions TO PUBLIC;",
    );
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start_dev(tmp.path(), free_port());
    s.bao_as("root", &["secrets", "enable", "database"])
        .expect(0, "secrets enable database");
    let ca = dir.path().join("ca.pem").display().to_string();
    let other = dir.path().join("other-ca.pem").display().to_string();
    let url = |params: &str| {
        format!(
            "connection_url=postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{port}/app?{params}"
        )
    };
    let configure = |name: &str, params: &str| {
        s.bao_as(
            "root",
            &[
                "write",
                &format!("database/config/{name}"),
                "plugin_name=postgresql-database-plugin",
                &url(params),
                "username=admin",
                "password=pw",
                "allowed_roles=*",
            ],
        )
    };
    // The name in the certificate is db.example: verify-full to 127.0.0.1 is refused, and so
    // is a chain to another CA; nothing is stored.
    for (name, params, want) in [
        (
            "full",
            format!("sslmode=verify-full&sslrootcert={ca}"),
            "NotValidForName",
        ),
        (
            "wrongca",
            format!("sslmode=verify-ca&sslrootcert={other}"),
            "UnknownIssuer",
        ),
    ] {
        let o = configure(name, &params);
        assert_eq!(o.code, 2, "{name}: {o}");
        assert!(
            o.stderr.contains(want) || o.stderr.to_lowercase().contains("certificate"),
            "{name}: {o}"
        );
        assert_eq!(
            s.bao_as("root", &["read", &format!("database/config/{name}")])
                .code,
            2
        );
    }
    let o = configure(
        "missingca",
        "sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem",
    );
    assert_eq!(o.code, 2, "{o}");
    assert!(o.stderr.contains("sslrootcert /nonexistent/ca.pem"), "{o}");
    // verify-ca (the chain, not the name), require (encrypted, unchecked) and disable.
    for (name, params, tls) in [
        ("ca", format!("sslmode=verify-ca&sslrootcert={ca}"), "t"),
        ("req", "sslmode=require".to_owned(), "t"),
        ("plain", "sslmode=disable".to_owned(), "f"),
    ] {
        configure(name, &params).expect(0, name);
        s.bao_as(
            "root",
            &[
                "write",
                &format!("database/roles/{name}"),
                &format!("db_name={name}"),
                &format!("creation_statements=CREATE ROLE \"{{{{name}}}}\" WITH LOGIN PASSWORD '{{{{password}}}}'; INSERT INTO data.sessions SELECT '{name}', ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid();"),
            ],
        )
        .expect(0, "write role");
        let (user, pw, _) = creds(&s, name);
        db.as_user(&user, &pw, "SELECT 1")
            .expect(0, "the user connects");
        assert_eq!(
            db.admin(
                "app",
                &format!("SELECT tls FROM data.sessions WHERE who = '{name}'")
            ),
            tls,
            "{name}"
        );
    }
}

#[test]
fn mariadb_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let db = start_mariadb(dir.path());
    scenario(&db);
}
