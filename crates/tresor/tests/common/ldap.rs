//! A real OpenLDAP slapd on 127.0.0.1 for the tests (issue 14's LDAP auth method, the web
//! UI's LDAP sign-in): users `alice` (password `alicepw`, in group `devs` by `member`) and `bob`
//! (`bobpw`, in group `ops`, seen through the `memberOf` overlay) under `ou=users,BASE`,
//! groups under `ou=groups,BASE`, the admin `cn=admin,BASE` (`adminpw`), plain LDAP and
//! ldaps with a CA of its own.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, run};

/// slapd, stopped (by PID) when dropped.
pub struct Slapd {
    child: Child,
    pub port: u16,
    pub tls_port: u16,
    /// The CA certificate (PEM) the ldaps listener's certificate chains to.
    pub cert: String,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const BASE: &str = "dc=example,dc=org";

impl Slapd {
    /// How many operations of a kind (`Bind`, `Search`) slapd has completed, from its monitor
    /// database. The read itself is a search, counted by the next read.
    pub fn completed(&self, kind: &str) -> u64 {
        let o = run(Command::new("ldapsearch").args([
            "-x",
            "-LLL",
            "-H",
            &format!("ldap://127.0.0.1:{}", self.port),
            "-b",
            &format!("cn={kind},cn=Operations,cn=Monitor"),
            "-s",
            "base",
            "monitorOpCompleted",
        ]));
        assert_eq!(o.code, 0, "ldapsearch cn=Monitor: {o}");
        o.stdout
            .lines()
            .find_map(|l| l.strip_prefix("monitorOpCompleted: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no monitorOpCompleted in {o}"))
    }
}

/// Starts slapd with its files in `dir` and waits (boundedly) until alice can bind.
pub fn start_slapd(dir: &Path) -> Slapd {
    let t = dir.display().to_string();
    std::fs::create_dir_all(dir.join("db")).unwrap();
    // A CA and a server certificate it signs (rustls, like any strict verifier, does not take
    // a CA certificate as the server's own).
    for args in [
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=LDAP test CA",
            "-days",
            "2",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
        ],
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "server.csr",
        ],
        vec![
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
            "cert.pem",
            "-extfile",
            "san.cnf",
        ],
    ] {
        std::fs::write(
            dir.join("san.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        let o = run(Command::new("openssl").args(&args).current_dir(dir));
        assert_eq!(o.code, 0, "openssl {args:?}: {o}");
    }
    let conf = format!(
        "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile {t}/slapd.pid
TLSCertificateFile {t}/cert.pem
TLSCertificateKeyFile {t}/key.pem
database mdb
maxsize 10485760
suffix \"{BASE}\"
rootdn \"cn=admin,{BASE}\"
rootpw adminpw
directory {t}/db
overlay memberof
access to attrs=userPassword by anonymous auth by self write by * none
access to * by * read
database monitor
access to * by * read
"
    );
    std::fs::write(dir.join("slapd.conf"), conf).unwrap();
    let mut ldif = format!(
        "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
         dn: ou=users,{BASE}\nobjectClass: organizationalUnit\nou: users\n\n\
         dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n"
    );
    for (uid, pw) in [("alice", "alicepw"), ("bob", "bobpw")] {
        ldif.push_str(&format!(
            "dn: uid={uid},ou=users,{BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\nuserPassword: {pw}\n\n"
        ));
    }
    ldif.push_str(&format!(
        "dn: cn=devs,ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: devs\nmember: uid=alice,ou=users,{BASE}\n\n"
    ));
    std::fs::write(dir.join("data.ldif"), ldif).unwrap();
    let o = run(Command::new("slapadd").args([
        "-f",
        &format!("{t}/slapd.conf"),
        "-l",
        &format!("{t}/data.ldif"),
    ]));
    assert_eq!(o.code, 0, "slapadd: {o}");
    let (port, tls_port) = (free_port(), free_port());
    let child = Command::new("slapd")
        .args([
            "-d",
            "0",
            "-f",
            &format!("{t}/slapd.conf"),
            "-h",
            &format!("ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("slapd (Debian package slapd) is installed");
    let s = Slapd {
        child,
        port,
        tls_port,
        cert: std::fs::read_to_string(dir.join("ca.pem")).unwrap(),
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let o = run(Command::new("ldapwhoami").args([
            "-x",
            "-H",
            &format!("ldap://127.0.0.1:{port}"),
            "-D",
            &format!("uid=alice,ou=users,{BASE}"),
            "-w",
            "alicepw",
        ]));
        if o.code == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "slapd did not start: {o}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A group added while slapd runs, so the memberOf overlay marks bob's entry.
    let add = format!(
        "dn: cn=ops,ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: ops\nmember: uid=bob,ou=users,{BASE}\n"
    );
    std::fs::write(dir.join("ops.ldif"), add).unwrap();
    let o = run(Command::new("ldapadd").args([
        "-x",
        "-H",
        &format!("ldap://127.0.0.1:{port}"),
        "-D",
        &format!("cn=admin,{BASE}"),
        "-w",
        "adminpw",
        "-f",
        &format!("{t}/ops.ldif"),
    ]));
    assert_eq!(o.code, 0, "ldapadd: {o}");
    s
}
