//! A PostgreSQL 15 cluster of the test's own on 127.0.0.1 (Debian's `postgresql` package, as
//! `.ci/run` installs it): superuser `admin` with the given password over TCP
//! (scram-sha-256, what Tresor and generated users use), trust on the local socket in the
//! cluster's directory for the test's own checks, no fsync. Stopped by its postmaster's PID
//! when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{free_port, run};

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct Postgres {
    /// The cluster's directory (`pg/` under it) and its socket directory.
    pub dir: PathBuf,
    pub port: u16,
}

impl Postgres {
    /// initdb and start in `dir`, which the postgres user is given.
    pub fn start(dir: &Path, admin_pw: &str) -> Postgres {
        assert!(
            Path::new(PG_BIN).join("initdb").exists(),
            "PostgreSQL 15 is not installed (apt-get install postgresql; .ci/run does)"
        );
        let t = dir.display().to_string();
        std::fs::write(dir.join("pw"), format!("{admin_pw}\n")).unwrap();
        run(Command::new("chown").args(["-R", "postgres", &t])).expect(0, "chown");
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
            &format!("-c listen_addresses=127.0.0.1 -p {port} -k {t} -c fsync=off"),
            "start",
        ]));
        // The guard exists before the assertion, so a half-started cluster is stopped too.
        let pg = Postgres {
            dir: dir.to_path_buf(),
            port,
        };
        assert_eq!(o.code, 0, "pg_ctl start\n{o}");
        pg
    }

    /// Runs `sql` in database `db` as `admin` over the local socket; panics naming the SQL.
    pub fn psql(&self, db: &str, sql: &str) {
        let o = run(Command::new("psql").args([
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
            db,
            "-c",
            sql,
        ]));
        assert_eq!(o.code, 0, "SQL {sql:?}\n{o}");
    }
}

impl Drop for Postgres {
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
