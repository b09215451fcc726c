//! Issue 13, the CLI's side of the cert method: `tresor login -method=cert` with
//! `-client-cert`/`-client-key`, or with `VAULT_CLIENT_CERT`/`VAULT_CLIENT_KEY`, over a real TLS
//! listener, with `name=` and `-path=`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Out, Server, clean_command, free_port, run, strings};
use serde_json::{Value, json};

fn sh(dir: &Path, script: &str) -> Out {
    run(Command::new("sh").current_dir(dir).arg("-c").arg(script))
}

fn tresor(s: &Server) -> Command {
    let mut c = clean_command(env!("CARGO_BIN_EXE_tresor"));
    c.current_dir(&s.dir)
        .env("HOME", &s.home)
        .env("VAULT_ADDR", &s.addr)
        .env("VAULT_CACERT", s.dir.join("listener.crt"));
    c
}

#[test]
fn tresor_login_with_a_client_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    sh(
        dir,
        "set -e\n\
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
           -keyout listener.key -out listener.crt -days 2 -subj /CN=localhost \
           -addext subjectAltName=IP:127.0.0.1\n\
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
           -keyout ca.key -out ca.pem -days 2 -subj /CN=People-CA \
           -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign\n\
         openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
           -keyout alice-key.pem -out alice.csr -subj /CN=alice\n\
         printf 'extendedKeyUsage=clientAuth\\nkeyUsage=critical,digitalSignature\\n' > ext.cnf\n\
         openssl x509 -req -in alice.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
           -out alice.pem -days 1 -extfile ext.cnf\n",
    )
    .expect(0, "certificates");
    let port = free_port();
    let config = format!(
        "storage \"embedded\" {{\n  path = \"data\"\n}}\n\n\
         listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_cert_file = \"listener.crt\"\n  tls_key_file = \"listener.key\"\n}}\n\n\
         disable_mlock = true\n"
    );
    let s = Server::start_named(
        dir,
        port,
        "config.hcl",
        &config,
        Some(dir.join("listener.crt")),
    );
    let init = s.init(1, 1);
    s.unseal(&[strings(&init["keys_base64"])[0].as_str()]);
    let root = init["root_token"].as_str().unwrap().to_owned();

    // Enabled with Tresor's own CLI, at a path of its own.
    let o = run(tresor(&s).env("VAULT_TOKEN", &root).args([
        "auth",
        "enable",
        "-path=people-certs",
        "-description=People's certificates",
        "cert",
    ]));
    assert_eq!(o.code, 0, "{o}");
    let ca = std::fs::read_to_string(dir.join("ca.pem")).unwrap();
    let (code, v) = s.api(
        "POST",
        "auth/people-certs/certs/people",
        Some(&json!({"certificate": ca, "token_policies": ["people"]}).to_string()),
        Some(&root),
    );
    assert_eq!(code, 204, "{v}");

    // Flags, with name= and -path=.
    let o = run(tresor(&s).args([
        "login",
        "-method=cert",
        "-path=people-certs",
        "-client-cert=alice.pem",
        "-client-key=alice-key.pem",
        "-format=json",
        "name=people",
    ]));
    assert_eq!(o.code, 0, "{o}");
    let v: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {o}"));
    assert_eq!(v["auth"]["policies"], json!(["default", "people"]), "{v}");
    let stored = std::fs::read_to_string(s.home.join(".vault-token")).unwrap();
    assert_eq!(stored, v["auth"]["client_token"].as_str().unwrap());

    // The variables, as Vault's CLI reads them.
    let o = run(tresor(&s)
        .env("VAULT_CLIENT_CERT", dir.join("alice.pem"))
        .env("VAULT_CLIENT_KEY", dir.join("alice-key.pem"))
        .args(["login", "-method=cert", "-path=people-certs", "-token-only"]));
    assert_eq!(o.code, 0, "{o}");
    assert!(o.stdout.starts_with("hvs."), "{o}");

    // Without a certificate the CLI says what is missing, and sends nothing.
    let o = run(tresor(&s).args(["login", "-method=cert", "-path=people-certs"]));
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("-client-cert"), "{o}");
}
