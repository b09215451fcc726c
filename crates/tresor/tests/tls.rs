//! End to end: a TLS listener with an openssl-made P-256 certificate. `bao` trusts it through
//! `VAULT_CACERT`, curl through `--cacert`; untrusted clients fail. The listener asks for a client
//! certificate but does not require one: curl works with and without `--cert`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Server, free_port, run, run_with_stdin, strings};

fn self_signed(dir: &Path, name: &str, cn: &str) {
    let o = run(Command::new("openssl").current_dir(dir).args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &format!("{name}.key"),
        "-out",
        &format!("{name}.crt"),
        "-days",
        "2",
        "-subj",
        &format!("/CN={cn}"),
        "-addext",
        "subjectAltName=IP:127.0.0.1",
    ]));
    assert_eq!(o.code, 0, "openssl req\n{o}");
}

/// `curl -s -o /dev/null -w %{http_code} EXTRA URL`: (curl exit code, http status text).
fn curl_code(dir: &Path, extra: &[&str], url: &str) -> (i32, String) {
    let o = run(Command::new("curl")
        .current_dir(dir)
        .args([
            "-s",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(extra)
        .arg(url));
    (o.code, o.stdout.trim().to_owned())
}

#[test]
fn tls_listener_serves_bao_and_curl_and_accepts_an_optional_client_cert() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    self_signed(dir, "server", "localhost");
    self_signed(dir, "client", "tresor-test-client");
    let port = free_port();
    let config = format!(
        r#"storage "embedded" {{
  path = "data"
}}

listener "tcp" {{
  address       = "127.0.0.1:{port}"
  tls_cert_file = "server.crt"
  tls_key_file  = "server.key"
}}

disable_mlock = true
"#
    );
    let s = Server::start_named(
        dir,
        port,
        "config.hcl",
        &config,
        Some(dir.join("server.crt")),
    );
    assert!(s.addr.starts_with("https://"));
    let health = format!("{}/v1/sys/health", s.addr);

    // bao with VAULT_CACERT: talks TLS and reports the uninitialized server (exit 2).
    let o = s.bao(&["status", "-format=json"]);
    assert_eq!(o.code, 2, "{o}");
    assert_eq!(o.json()["initialized"], false);
    // Without the CA the certificate is not trusted.
    let o = run(s.bao_cmd(&["status"]).env_remove("VAULT_CACERT"));
    assert!(o.code != 0 && o.code != 2, "untrusted TLS must fail\n{o}");
    assert!(
        o.stderr.contains("certificate") || o.stderr.contains("x509"),
        "{o}"
    );

    // A real session over TLS: init, unseal, status.
    let init = s
        .bao(&[
            "operator",
            "init",
            "-key-shares=1",
            "-key-threshold=1",
            "-format=json",
        ])
        .expect(0, "init over TLS")
        .json();
    let key = strings(&init["unseal_keys_b64"]).remove(0);
    s.bao(&["operator", "unseal", &key])
        .expect(0, "unseal over TLS");
    s.bao(&["status"]).expect(0, "status over TLS");

    // curl: trusted with --cacert, refused without it, and plain HTTP gets no answer.
    assert_eq!(
        curl_code(dir, &["--cacert", "server.crt"], &health),
        (0, "200".into())
    );
    let (code, _) = curl_code(dir, &[], &health);
    assert_eq!(code, 60, "curl must reject the untrusted certificate");
    let (code, status) = curl_code(dir, &[], &health.replace("https://", "http://"));
    assert!(
        code != 0 || status != "200",
        "plain HTTP must not be served on a TLS listener"
    );

    // A client certificate is accepted but not required.
    assert_eq!(
        curl_code(
            dir,
            &[
                "--cacert",
                "server.crt",
                "--cert",
                "client.crt",
                "--key",
                "client.key"
            ],
            &health
        ),
        (0, "200".into())
    );
    assert_eq!(
        curl_code(dir, &["--cacert", "server.crt"], &health),
        (0, "200".into())
    );

    // The server does ask for one: s_client prints the signature algorithms of a
    // CertificateRequest ("Requested Signature Algorithms") only when it received one.
    let o = run_with_stdin(
        Command::new("openssl").current_dir(dir).args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-CAfile",
            "server.crt",
        ]),
        Some(b"Q\n"),
    );
    assert!(o.stdout.contains("Verify return code: 0"), "{o}");
    assert!(
        o.stdout.contains("Requested Signature Algorithms"),
        "no CertificateRequest seen\n{o}"
    );
}
