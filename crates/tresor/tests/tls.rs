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

/// An X.509 v1 client certificate (no extensions: what `openssl x509 -req` makes, and what
/// hvac's integration suite presents) is accepted at the TLS layer like any other, as Go's
/// `tls.RequestClientCert` accepts it in Vault. The listener used to parse it with webpki,
/// which takes v3 only, and aborted every handshake with `certificate_unknown`, so hvac's
/// suite could not even reach `sys/init`.
#[test]
fn a_version_1_client_certificate_is_accepted_over_tls_1_2_and_1_3() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    self_signed(dir, "server", "localhost");
    for (name, newkey) in [("rsa", "rsa:2048"), ("ec", "ec")] {
        let mut req = Command::new("openssl");
        req.current_dir(dir)
            .args(["req", "-new", "-newkey", newkey])
            .args(if name == "ec" {
                &["-pkeyopt", "ec_paramgen_curve:P-256"][..]
            } else {
                &[][..]
            })
            .args(["-nodes", "-keyout", &format!("{name}.key")])
            .args(["-out", &format!("{name}.csr"), "-subj", "/CN=client"]);
        assert_eq!(run(&mut req).code, 0, "openssl req {name}");
        let o = run(Command::new("openssl").current_dir(dir).args([
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-signkey",
            &format!("{name}.key"),
            "-days",
            "2",
            "-out",
            &format!("{name}.crt"),
        ]));
        assert_eq!(o.code, 0, "openssl x509 -req {name}\n{o}");
        let o = run(Command::new("openssl").current_dir(dir).args([
            "x509",
            "-in",
            &format!("{name}.crt"),
            "-noout",
            "-text",
        ]));
        assert!(o.stdout.contains("Version: 1 (0x0)"), "not a v1 cert\n{o}");
    }
    let port = free_port();
    let config = format!(
        "storage \"inmem\" {{}}\n\nlistener \"tcp\" {{\n  address       = \"127.0.0.1:{port}\"\n  tls_cert_file = \"server.crt\"\n  tls_key_file  = \"server.key\"\n}}\n\ndisable_mlock = true\n"
    );
    let s = Server::start_named(
        dir,
        port,
        "config.hcl",
        &config,
        Some(dir.join("server.crt")),
    );
    let url = format!("{}/v1/sys/init", s.addr);
    for name in ["rsa", "ec"] {
        for version in ["1.2", "1.3"] {
            let (cert, key) = (format!("{name}.crt"), format!("{name}.key"));
            let tls = format!("--tlsv{version}");
            let args = [
                "--cacert",
                "server.crt",
                &tls,
                "--tls-max",
                version,
                "--cert",
                &cert,
                "--key",
                &key,
            ];
            assert_eq!(
                curl_code(dir, &args, &url),
                (0, "200".into()),
                "{name} v1 client certificate over TLS {version}\n{}",
                s.log()
            );
        }
    }
    // hvac, as its suite calls it: a client certificate on every request.
    let o = run(Command::new("python3").current_dir(dir).args([
        "-c",
        &format!(
            "import hvac; c = hvac.Client(url='{}', cert=('rsa.crt', 'rsa.key'), verify='server.crt'); print(c.sys.is_initialized())",
            s.addr
        ),
    ]));
    assert_eq!((o.code, o.stdout.trim()), (0, "False"), "{o}");
}
