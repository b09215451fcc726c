//! The engine in-process against a real MariaDB on 127.0.0.1 (Debian's `mariadb-server`;
//! `.ci/run` installs it), with in-memory storage: MySQL commits DDL as it goes, so a role
//! whose second statement fails must have its half-created user dropped; revocation drops
//! every account of the name and KILLs its sessions; root rotation leaves the old password
//! useless; a static role's account rotates with `ALTER USER` on each of its hosts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use serde_json::{Map, Value, json};
use tresor_sdk::clock::SystemClock;
use tresor_sdk::{
    Caller, LogicalBackend, LogicalError, MountView, Operation, Request, Response, SecretRef,
    Storage,
};

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

/// mariadbd in a temporary directory, killed by PID when dropped.
struct Maria {
    child: Child,
    dir: PathBuf,
    port: u16,
    _tmp: tempfile::TempDir,
}

impl Drop for Maria {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn output(c: &mut Command) -> (bool, String) {
    let o = c.stdin(Stdio::null()).output().expect("run a client");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout).trim(),
            String::from_utf8_lossy(&o.stderr).trim()
        ),
    )
}

fn start() -> Maria {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().display().to_string();
    let (okay, out) = output(Command::new("timeout").args([
        "60",
        "mariadb-install-db",
        "--no-defaults",
        &format!("--datadir={t}/data"),
        "--user=root",
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
    ]));
    assert!(
        okay,
        "mariadb-install-db (apt-get install mariadb-server): {out}"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mariadbd");
    let m = Maria {
        child,
        dir: tmp.path().to_path_buf(),
        port,
        _tmp: tmp,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !output(Command::new("mariadb-admin").args([
        "--no-defaults",
        "-uroot",
        &format!("--socket={t}/mysql.sock"),
        "ping",
    ]))
    .0
    {
        assert!(Instant::now() < deadline, "mariadbd did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    m.root(
        "CREATE USER 'admin'@'%' IDENTIFIED BY 'pw'; GRANT ALL PRIVILEGES ON *.* TO 'admin'@'%' WITH GRANT OPTION;
         CREATE DATABASE data; CREATE TABLE data.items (id int);
         CREATE USER 'svc'@'%' IDENTIFIED BY 'svc-initial'; CREATE USER 'svc'@'127.0.0.1' IDENTIFIED BY 'svc-initial';",
    );
    m
}

impl Maria {
    fn root(&self, sql: &str) -> String {
        let (okay, out) = output(Command::new("timeout").args([
            "30",
            "mariadb",
            "--no-defaults",
            "-uroot",
            &format!("--socket={}/mysql.sock", self.dir.display()),
            "-N",
            "-B",
            "-e",
            sql,
        ]));
        assert!(okay, "{sql}: {out}");
        out
    }

    fn client(&self, user: &str, pw: &str, sql: &str) -> Command {
        let mut c = Command::new("timeout");
        c.args([
            "30",
            "mariadb",
            "--no-defaults",
            "--protocol=TCP",
            "-h127.0.0.1",
            &format!("-P{}", self.port),
            &format!("-u{user}"),
            "-N",
            "-B",
            "-e",
            sql,
        ])
        .env("MYSQL_PWD", pw);
        c
    }

    fn connects(&self, user: &str, pw: &str) -> bool {
        output(&mut self.client(user, pw, "SELECT 1")).0
    }

    fn accounts(&self, like: &str) -> String {
        self.root(&format!(
            "SELECT count(*) FROM mysql.user WHERE User LIKE '{like}'"
        ))
    }
}

struct T {
    b: Arc<dyn LogicalBackend>,
    storage: Arc<Mem>,
    mount: Arc<MountView>,
}

impl T {
    fn new() -> T {
        T {
            b: tresor_database::backend_with_clock(Arc::new(SystemClock)),
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_creds_rollback_revoke_and_rotation() {
    let m = start();
    let t = T::new();
    t.data(
        Operation::Update,
        "config/m",
        json!({
            "plugin_name": "mysql-database-plugin",
            "connection_url": format!("{{{{username}}}}:{{{{password}}}}@tcp(127.0.0.1:{})/", m.port),
            "username": "admin",
            "password": "pw",
            "allowed_roles": "ro,broken,svc",
            // One connection: no operation may hold one while it waits for another.
            "max_open_connections": 1,
        }),
    )
    .await;

    // Root rotation: the old password stops working, the engine keeps working.
    t.data(Operation::Update, "rotate-root/m", json!({})).await;
    assert!(!m.connects("admin", "pw"));

    t.data(
        Operation::Update,
        "roles/ro",
        json!({"db_name": "m", "creation_statements": "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'; GRANT SELECT ON data.* TO '{{name}}'@'%';"}),
    )
    .await;
    let resp = t
        .call(Operation::Read, "creds/ro", json!({}))
        .await
        .unwrap()
        .unwrap();
    let secret = resp.secret.clone().unwrap();
    let d = resp.data.unwrap();
    let (user, pw) = (
        d["username"].as_str().unwrap().to_owned(),
        d["password"].as_str().unwrap().to_owned(),
    );
    assert!(
        user.len() <= 32 && user.starts_with("v-token-ro-"),
        "{user}"
    );
    assert!(output(&mut m.client(&user, &pw, "SELECT count(*) FROM data.items")).0);
    assert!(!output(&mut m.client(&user, &pw, "INSERT INTO data.items VALUES (1)")).0);

    // Revocation: the open session is KILLed and the account dropped.
    let mut session = m
        .client(&user, &pw, "SELECT SLEEP(60)")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while m.root(&format!(
        "SELECT count(*) FROM information_schema.PROCESSLIST WHERE USER = '{user}'"
    )) == "0"
    {
        assert!(Instant::now() < deadline, "the session never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut r = t.req(Operation::Update, "sys/leases/revoke", json!({}));
    r.secret = Some(SecretRef {
        lease_id: "database/creds/ro/x".into(),
        secret_type: secret.secret_type.clone(),
        internal_data: secret.internal_data.clone(),
        increment: None,
    });
    t.b.revoke_secret(r.clone()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while session.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = session.kill();
            panic!("the session outlived the revocation");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(m.accounts(&user), "0");
    t.b.revoke_secret(r).await.unwrap();

    // A failing second statement: the user the first one created is dropped.
    t.data(
        Operation::Update,
        "roles/broken",
        json!({"db_name": "m", "creation_statements": "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'; GRANT SELEC ON data.* TO '{{name}}'@'%';"}),
    )
    .await;
    let e = t
        .call(Operation::Read, "creds/broken", json!({}))
        .await
        .unwrap_err();
    assert!(matches!(e, LogicalError::InvalidRequest(_)), "{e:?}");
    assert!(e.to_string().contains("error creating the user"), "{e}");
    assert_eq!(m.accounts("%broken%"), "0");

    // Not in allowed_roles: refused as a permission error, nothing created.
    t.data(
        Operation::Update,
        "roles/other",
        json!({"db_name": "m", "creation_statements": "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'"}),
    )
    .await;
    let e = t
        .call(Operation::Read, "creds/other", json!({}))
        .await
        .unwrap_err();
    assert!(matches!(e, LogicalError::Forbidden(_)), "{e:?}");

    // A static role whose account exists on two hosts: both get the new password.
    t.data(
        Operation::Update,
        "static-roles/svc",
        json!({"db_name": "m", "username": "svc", "rotation_period": "24h"}),
    )
    .await;
    let p = t.data(Operation::Read, "static-creds/svc", json!({})).await["password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(m.connects("svc", &p) && !m.connects("svc", "svc-initial"));
    t.data(Operation::Update, "rotate-role/svc", json!({}))
        .await;
    let p2 = t.data(Operation::Read, "static-creds/svc", json!({})).await["password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(p2 != p && m.connects("svc", &p2) && !m.connects("svc", &p));

    // An unreachable database: refused naming the host, nothing stored.
    let e = t
        .call(
            Operation::Update,
            "config/dead",
            json!({"plugin_name": "mysql-database-plugin", "connection_url": "{{username}}:{{password}}@tcp(127.0.0.1:1)/", "username": "a", "password": "secretpw"}),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("127.0.0.1:1") && !e.to_string().contains("secretpw"),
        "{e}"
    );
    assert!(
        t.call(Operation::Read, "config/dead", json!({}))
            .await
            .unwrap()
            .is_none()
    );
    t.b.cleanup().await;
}
