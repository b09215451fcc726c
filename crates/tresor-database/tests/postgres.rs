//! The engine in-process against a real PostgreSQL 15 on 127.0.0.1 (Debian's `postgresql`;
//! `.ci/run` installs it), with in-memory storage and times the test chooses: static roles
//! rotate from `periodic` when their period has passed (and not before), a failed rotation
//! keeps the working password and is retried after its backoff, renewals move the user's
//! `VALID UNTIL`, and revocation ends the user's sessions. The `bao`-driven end-to-end tests
//! are in `crates/tresor/tests/database.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use tresor_sdk::clock::{Clock, ManualClock};
use tresor_sdk::{
    Caller, Context, LogicalBackend, LogicalError, MountView, Operation, Request, Response,
    SecretRef, Storage,
};

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

#[derive(Default)]
struct Mem(Mutex<BTreeMap<String, Vec<u8>>>);

#[async_trait]
impl Storage for Mem {
    async fn get(&self, key: &str) -> tresor_sdk::Result<Option<Vec<u8>>> {
        Ok(self.0.lock().get(key).cloned())
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> tresor_sdk::Result<()> {
        self.0.lock().insert(key.to_owned(), value);
        Ok(())
    }
    async fn delete(&self, key: &str) -> tresor_sdk::Result<()> {
        self.0.lock().remove(key);
        Ok(())
    }
    async fn list(&self, prefix: &str) -> tresor_sdk::Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for k in self.0.lock().keys() {
            if let Some(rest) = k.strip_prefix(prefix) {
                let child = match rest.find('/') {
                    Some(i) => rest[..=i].to_owned(),
                    None => rest.to_owned(),
                };
                if out.last() != Some(&child) {
                    out.push(child);
                }
            }
        }
        Ok(out)
    }
}

/// PostgreSQL in a temporary directory, stopped by its postmaster's PID.
struct Pg {
    dir: PathBuf,
    port: u16,
    _tmp: tempfile::TempDir,
}

impl Drop for Pg {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.dir.join("pg/postmaster.pid"))
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
}

fn ok(c: &mut Command, what: &str) -> String {
    let o = c.stdin(Stdio::null()).output().expect(what);
    assert!(
        o.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn start_pg() -> Pg {
    assert!(
        Path::new(PG_BIN).join("initdb").exists(),
        "PostgreSQL 15 is not installed (apt-get install postgresql; .ci/run does)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().display().to_string();
    std::fs::write(tmp.path().join("pw"), "pw\n").unwrap();
    ok(Command::new("chown").args(["-R", "postgres", &t]), "chown");
    ok(
        Command::new("runuser").args([
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
        ]),
        "initdb",
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    ok(
        Command::new("timeout").args([
            "30",
            "runuser",
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
            &format!("-c listen_addresses=127.0.0.1 -p {port} -k {t} -c fsync=off"),
            "start",
        ]),
        "pg_ctl start",
    );
    let pg = Pg {
        dir: tmp.path().to_path_buf(),
        port,
        _tmp: tmp,
    };
    pg.admin("CREATE ROLE svc WITH LOGIN PASSWORD 'svc-initial'");
    pg
}

impl Pg {
    fn admin(&self, sql: &str) -> String {
        ok(
            Command::new("timeout").args([
                "30",
                "psql",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &self.dir.display().to_string(),
                "-p",
                &self.port.to_string(),
                "-U",
                "admin",
                "-d",
                "postgres",
                "-tAc",
                sql,
            ]),
            "admin psql",
        )
    }

    fn connects(&self, user: &str, pw: &str) -> bool {
        Command::new("timeout")
            .args([
                "30",
                "psql",
                "-X",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                user,
                "-d",
                "postgres",
                "-tAc",
                "SELECT 1",
            ])
            .env("PGPASSWORD", pw)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }
}

struct T {
    b: Arc<dyn LogicalBackend>,
    storage: Arc<Mem>,
    mount: Arc<MountView>,
    clock: Arc<ManualClock>,
}

impl T {
    fn new() -> T {
        let clock = Arc::new(ManualClock::at(1_900_000_000));
        T {
            b: tresor_database::backend_with_clock(clock.clone()),
            storage: Arc::new(Mem::default()),
            mount: Arc::new(MountView {
                mount_point: "database/".into(),
                mount_type: "database".into(),
                mount_accessor: "database_1".into(),
                default_lease_ttl: Duration::from_secs(3600),
                max_lease_ttl: Duration::from_secs(86400),
                options: BTreeMap::new(),
                system: None,
            }),
            clock,
        }
    }

    fn req(&self, op: Operation, path: &str, data: Value) -> Request {
        Request {
            operation: op,
            path: path.into(),
            data: match data {
                Value::Object(m) => m,
                _ => Map::new(),
            },
            storage: self.storage.clone(),
            mount: self.mount.clone(),
            caller: Caller {
                display_name: "token".into(),
                ..Default::default()
            },
            secret: None,
            connection: Default::default(),
            headers: Vec::new(),
            raw_body: None,
            deadline: None,
        }
    }

    async fn call(
        &self,
        op: Operation,
        path: &str,
        data: Value,
    ) -> Result<Option<Response>, LogicalError> {
        self.b.handle(self.req(op, path, data)).await
    }

    async fn data(&self, op: Operation, path: &str, data: Value) -> Map<String, Value> {
        match self.call(op, path, data).await {
            Ok(r) => r.and_then(|r| r.data).unwrap_or_default(),
            Err(e) => panic!("{op:?} {path}: {e:?}"),
        }
    }

    fn ctx(&self) -> Context {
        Context {
            storage: self.storage.clone(),
            mount: self.mount.clone(),
            now: self.clock.now(),
        }
    }
}

async fn configure(t: &T, pg: &Pg) {
    t.data(
        Operation::Update,
        "config/pg",
        json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": format!("postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?sslmode=disable", pg.port),
            "username": "admin",
            "password": "pw",
            "allowed_roles": ["*"],
            // One connection: no operation may hold one while it waits for another.
            "max_open_connections": 1,
        }),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_roles_rotate_on_schedule_and_retry_after_a_failure() {
    let pg = start_pg();
    let t = T::new();
    configure(&t, &pg).await;
    t.data(
        Operation::Update,
        "static-roles/svc",
        json!({"db_name": "pg", "username": "svc", "rotation_period": "1h"}),
    )
    .await;
    let pw = |d: &Map<String, Value>| d["password"].as_str().unwrap().to_owned();
    let p1 = pw(&t.data(Operation::Read, "static-creds/svc", json!({})).await);
    assert!(!pg.connects("svc", "svc-initial"));
    assert!(pg.connects("svc", &p1));

    // Not due yet: periodic leaves it alone.
    t.clock.advance(Duration::from_secs(1800));
    t.b.periodic(&t.ctx()).await.unwrap();
    assert_eq!(
        pw(&t.data(Operation::Read, "static-creds/svc", json!({})).await),
        p1
    );
    let d = t.data(Operation::Read, "static-creds/svc", json!({})).await;
    assert_eq!(d["ttl"], 1800);

    // Due: rotated on the schedule, by the clock the core hands to periodic.
    t.clock.advance(Duration::from_secs(1801));
    t.b.periodic(&t.ctx()).await.unwrap();
    let p2 = pw(&t.data(Operation::Read, "static-creds/svc", json!({})).await);
    assert_ne!(p1, p2);
    assert!(pg.connects("svc", &p2) && !pg.connects("svc", &p1));

    // A rotation that fails (its statements need a table that does not exist yet) keeps the
    // password that works, and is retried after its backoff.
    t.data(
        Operation::Update,
        "static-roles/svc",
        json!({"rotation_statements": "ALTER ROLE \"{{name}}\" WITH PASSWORD '{{password}}'; SELECT * FROM gate"}),
    )
    .await;
    t.clock.advance(Duration::from_secs(3601));
    assert!(t.b.periodic(&t.ctx()).await.is_err());
    assert_eq!(
        pw(&t.data(Operation::Read, "static-creds/svc", json!({})).await),
        p2
    );
    assert!(
        pg.connects("svc", &p2),
        "a failed rotation broke the account"
    );
    pg.admin("CREATE TABLE gate (x int)");
    // Within the backoff: not retried.
    t.clock.advance(Duration::from_secs(10));
    t.b.periodic(&t.ctx()).await.unwrap();
    assert_eq!(
        pw(&t.data(Operation::Read, "static-creds/svc", json!({})).await),
        p2
    );
    // After it: retried with a fresh password.
    t.clock.advance(Duration::from_secs(30));
    t.b.periodic(&t.ctx()).await.unwrap();
    let p3 = pw(&t.data(Operation::Read, "static-creds/svc", json!({})).await);
    assert!(p3 != p2 && p3 != p1);
    assert!(pg.connects("svc", &p3) && !pg.connects("svc", &p2));

    // Cleanup closes the pools; the engine reopens on the next request.
    t.b.cleanup().await;
    t.data(Operation::Update, "rotate-role/svc", json!({}))
        .await;
    let p4 = pw(&t.data(Operation::Read, "static-creds/svc", json!({})).await);
    assert!(pg.connects("svc", &p4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leased_creds_renew_and_revoke_end_sessions() {
    let pg = start_pg();
    let t = T::new();
    configure(&t, &pg).await;
    // Root rotation: the old password no longer connects; the engine still does.
    assert!(pg.connects("admin", "pw"));
    t.data(Operation::Update, "rotate-root/pg", json!({})).await;
    assert!(!pg.connects("admin", "pw"));
    t.data(
        Operation::Update,
        "roles/app",
        json!({
            "db_name": "pg",
            "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'", "GRANT pg_read_all_data TO \"{{name}}\""],
            "default_ttl": "10m",
            "max_ttl": "1h",
        }),
    )
    .await;
    let resp = t
        .call(Operation::Read, "creds/app", json!({}))
        .await
        .unwrap()
        .unwrap();
    let secret = resp.secret.clone().unwrap();
    assert_eq!(secret.ttl, Duration::from_secs(600));
    assert_eq!(secret.max_ttl, Some(Duration::from_secs(3600)));
    let d = resp.data.unwrap();
    let user = d["username"].as_str().unwrap().to_owned();
    let pw = d["password"].as_str().unwrap().to_owned();
    assert!(user.starts_with("v-token-app-"), "{user}");
    assert!(pg.connects(&user, &pw));
    let until = |u: &str| {
        pg.admin(&format!(
            "SELECT extract(epoch FROM rolvaliduntil)::bigint FROM pg_roles WHERE rolname = '{u}'"
        ))
    };
    let now = tresor_sdk::clock::unix(t.clock.now());
    assert_eq!(until(&user), (now + 600).to_string());

    let secret_req = |inc: Option<u64>| {
        let mut r = t.req(Operation::Update, "sys/leases/renew", json!({}));
        r.secret = Some(SecretRef {
            lease_id: "database/creds/app/x".into(),
            secret_type: secret.secret_type.clone(),
            internal_data: secret.internal_data.clone(),
            increment: inc.map(Duration::from_secs),
        });
        r
    };
    // Renewing moves VALID UNTIL; the role's max_ttl caps it.
    let r =
        t.b.renew_secret(secret_req(Some(7200)))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(r.secret.unwrap().ttl, Duration::from_secs(3600));
    assert_eq!(until(&user), (now + 3600).to_string());

    // Revocation ends an open session and drops the user.
    let mut session = Command::new("psql")
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            &user,
            "-d",
            "postgres",
            "-tAc",
            "SELECT pg_sleep(60)",
        ])
        .env("PGPASSWORD", &pw)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while pg.admin(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = '{user}'"
    )) == "0"
    {
        assert!(Instant::now() < deadline, "the session never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    t.b.revoke_secret(secret_req(None)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while session.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = session.kill();
            panic!("the session outlived the revocation");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        pg.admin(&format!(
            "SELECT count(*) FROM pg_roles WHERE rolname = '{user}'"
        )),
        "0"
    );
    // Revoking again (a retried revocation) succeeds: the user is already gone.
    t.b.revoke_secret(secret_req(None)).await.unwrap();

    // A password policy from the mount shapes the passwords.
    t.data(
        Operation::Update,
        "password_policies/digits",
        json!({"policy": "length = 24\nrule \"charset\" {\n  charset = \"0123456789\"\n}\n"}),
    )
    .await;
    let g = t
        .data(
            Operation::Read,
            "password_policies/digits/generate",
            json!({}),
        )
        .await;
    let gp = g["password"].as_str().unwrap();
    assert!(
        gp.len() == 24 && gp.chars().all(|c| c.is_ascii_digit()),
        "{gp}"
    );
    t.data(
        Operation::Update,
        "config/pg",
        json!({"password_policy": "digits"}),
    )
    .await;
    let d = t.data(Operation::Read, "creds/app", json!({})).await;
    let p = d["password"].as_str().unwrap();
    assert!(
        p.len() == 24 && p.chars().all(|c| c.is_ascii_digit()),
        "{p}"
    );
    // An unknown policy is refused at config time and nothing changes.
    let e = t
        .call(
            Operation::Update,
            "config/pg",
            json!({"password_policy": "nope"}),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("password policy \"nope\" not found"),
        "{e}"
    );
}

/// Issue 16: `rotation_schedule` (cron, UTC) with a `rotation_window`, driven by the injected
/// clock (which starts at 2030-03-17T17:46:40Z): rotated at the scheduled time, not before
/// and not twice; a window missed entirely waits for the next scheduled time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_roles_rotate_on_a_cron_schedule_within_its_window() {
    let pg = start_pg();
    let t = T::new();
    configure(&t, &pg).await;
    // Refused: both a period and a schedule, a bad schedule, a short window, a window
    // without a schedule.
    for (body, want) in [
        (
            json!({"db_name": "pg", "username": "svc", "rotation_period": "1h", "rotation_schedule": "0 18 * * *"}),
            "mutually exclusive",
        ),
        (
            json!({"db_name": "pg", "username": "svc", "rotation_schedule": "0 25 * * *"}),
            "hour",
        ),
        (
            json!({"db_name": "pg", "username": "svc", "rotation_schedule": "0 18 * * *", "rotation_window": "10m"}),
            "rotation_window must be 3600 seconds or more",
        ),
        (
            json!({"db_name": "pg", "username": "svc", "rotation_period": "1h", "rotation_window": "2h"}),
            "rotation_window is invalid",
        ),
    ] {
        let e = t
            .call(Operation::Update, "static-roles/svc", body)
            .await
            .unwrap_err();
        assert!(format!("{e:?}").contains(want), "{want}: {e:?}");
    }
    t.data(
        Operation::Update,
        "static-roles/svc",
        json!({"db_name": "pg", "username": "svc", "rotation_schedule": "0 18 * * *", "rotation_window": "1h"}),
    )
    .await;
    let read = t.data(Operation::Read, "static-roles/svc", json!({})).await;
    assert_eq!(read["rotation_schedule"], "0 18 * * *");
    assert_eq!(read["rotation_window"], 3600);
    assert!(read.get("rotation_period").is_none(), "{read:?}");
    let pw = |d: &Map<String, Value>| d["password"].as_str().unwrap().to_owned();
    let creds = || t.data(Operation::Read, "static-creds/svc", json!({}));
    let d = creds().await;
    let p1 = pw(&d);
    assert!(pg.connects("svc", &p1));
    // 17:46:40 now; the next scheduled time is 18:00.
    assert_eq!(d["ttl"], 800);
    assert_eq!(d["rotation_schedule"], "0 18 * * *");

    // 17:59:40: not yet.
    t.clock.advance(Duration::from_secs(780));
    t.b.periodic(&t.ctx()).await.unwrap();
    assert_eq!(pw(&creds().await), p1);
    // 18:00:40: rotated, once.
    t.clock.advance(Duration::from_secs(60));
    t.b.periodic(&t.ctx()).await.unwrap();
    let p2 = pw(&creds().await);
    assert_ne!(p1, p2);
    assert!(pg.connects("svc", &p2) && !pg.connects("svc", &p1));
    t.clock.advance(Duration::from_secs(120));
    t.b.periodic(&t.ctx()).await.unwrap();
    assert_eq!(
        pw(&creds().await),
        p2,
        "rotated twice for one scheduled time"
    );
    assert_eq!(creds().await["ttl"], 86400 - 160);

    // The server is away from 17:00 the next day until 19:30, past 18:00's one-hour window:
    // nothing at 19:30, and the next rotation is the day after at 18:00.
    t.clock.advance(Duration::from_secs(86400 + 5400 - 160));
    t.b.periodic(&t.ctx()).await.unwrap();
    let d = creds().await;
    assert_eq!(pw(&d), p2, "rotated outside the window");
    assert_eq!(d["ttl"], 86400 - 5400);
    // The day after, 18:10: inside the window, rotated.
    t.clock.advance(Duration::from_secs(86400 - 5400 + 600));
    t.b.periodic(&t.ctx()).await.unwrap();
    let p3 = pw(&creds().await);
    assert!(p3 != p2 && pg.connects("svc", &p3));

    // The largest window and period the duration parser takes neither panic nor rotate
    // early; a larger one is a clean 400; a huge cron step is one value.
    for body in [
        json!({"rotation_window": "9223372036s"}),
        json!({"rotation_period": "9223372036s"}),
        json!({"rotation_period": "18446744073709551615s"}),
        json!({"rotation_schedule": "5/4294967295 18 * * *"}),
    ] {
        if let Err(e) = t
            .call(Operation::Update, "static-roles/svc", body.clone())
            .await
        {
            // A duration the parser refuses is a clean 400, which is fine too.
            assert!(
                matches!(e, LogicalError::InvalidRequest(_)),
                "{body}: {e:?}"
            );
            continue;
        }
        let before = pw(&creds().await);
        t.clock.advance(Duration::from_secs(60));
        t.b.periodic(&t.ctx()).await.unwrap();
        let d = creds().await;
        assert!(d["ttl"].as_i64().unwrap() >= 0, "{body}: {d:?}");
        if body.get("rotation_period").is_some() {
            assert_eq!(pw(&d), before, "{body}: rotated early");
        }
    }

    // Back to a period: the schedule goes.
    t.data(
        Operation::Update,
        "static-roles/svc",
        json!({"rotation_period": "2h"}),
    )
    .await;
    let read = t.data(Operation::Read, "static-roles/svc", json!({})).await;
    assert_eq!(read["rotation_period"], 7200);
    assert!(read.get("rotation_schedule").is_none(), "{read:?}");
}

/// Issue 16: a creation interrupted between `CREATE` and its answer (the server stopped) leaves
/// a write-ahead entry; the periodic pass drops that user once the entry is older than any
/// creation takes (10 minutes), and not before. A creation that finishes leaves none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_creation_is_rolled_back_by_the_periodic_pass() {
    let pg = start_pg();
    let t = T::new();
    configure(&t, &pg).await;
    t.data(
        Operation::Update,
        "roles/ro",
        json!({"db_name": "pg", "creation_statements": "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';"}),
    )
    .await;
    let d = t.data(Operation::Read, "creds/ro", json!({})).await;
    assert!(pg.connects(
        d["username"].as_str().unwrap(),
        d["password"].as_str().unwrap()
    ));
    assert!(
        t.storage.list("wal/").await.unwrap().is_empty(),
        "a finished creation left its entry"
    );

    // As a stopped server leaves it: the user exists, the entry says it was being created.
    pg.admin("CREATE ROLE \"v-interrupted\" WITH LOGIN PASSWORD 'half-made'");
    let key = format!(
        "wal/{}",
        "v-interrupted"
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let now = 1_900_000_000;
    t.storage
        .put(
            &key,
            serde_json::to_vec(&json!({"version": 1, "db_name": "pg", "role": "ro", "username": "v-interrupted", "created": now}))
                .unwrap(),
        )
        .await
        .unwrap();
    // Young: it could be a creation in progress.
    t.clock.advance(Duration::from_secs(300));
    t.b.periodic(&t.ctx()).await.unwrap();
    assert!(pg.connects("v-interrupted", "half-made"));
    // Old: dropped, and the entry forgotten.
    t.clock.advance(Duration::from_secs(301));
    t.b.periodic(&t.ctx()).await.unwrap();
    assert!(!pg.connects("v-interrupted", "half-made"));
    assert_eq!(
        pg.admin("SELECT count(*) FROM pg_roles WHERE rolname = 'v-interrupted'"),
        "0"
    );
    assert!(t.storage.list("wal/").await.unwrap().is_empty());
}
