//! Issue 5, "done when" 1-3, tried the way the user stories describe them, with the real
//! tools only:
//! 1. curl + jq against a TLS listener issue etcd member certificates from `etcd/c1/pki`;
//!    openssl verifies the chain and completes a mutual-TLS handshake with them; revoking the
//!    token stops issuance at once.
//! 2. An offline root and a path-length-0 intermediate made with cfssl, imported through
//!    `config/ca`; a 5-minute certificate chains to the offline root and names the mount's CRL.
//! 3. A revoked certificate is on the next CRL (`openssl crl`) and `openssl ocsp` says revoked.
//!
//! Every external command runs under a deadline; the one background process (`openssl
//! s_server`) is killed by PID when its guard drops.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Out, Server, free_port, run, run_with_stdin, strings};
use serde_json::{Value, json};

/// `openssl ARGS` in `dir`.
fn openssl(dir: &Path, args: &[&str]) -> Out {
    run(Command::new("openssl").current_dir(dir).args(args))
}

/// `sh -c SCRIPT` in `dir` with extra environment variables.
fn sh(dir: &Path, script: &str, env: &[(&str, &str)]) -> Out {
    let mut c = Command::new("sh");
    c.current_dir(dir).arg("-c").arg(script);
    for (k, v) in env {
        c.env(k, v);
    }
    run(&mut c)
}

/// Colon-hex serial as openssl prints it in CRLs.
fn openssl_serial(colon: &str) -> String {
    colon.replace(':', "").to_ascii_uppercase()
}

fn write(dir: &Path, name: &str, v: &Value) {
    std::fs::write(
        dir.join(name),
        v.as_str()
            .unwrap_or_else(|| panic!("{name}: not a string: {v}")),
    )
    .unwrap();
}

/// A background process killed (SIGKILL, by PID) and reaped when dropped.
struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:port.
fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} not listening on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// Story 1

/// The command from the issue, verbatim; `$T` and `$PORT` come from the environment and curl
/// trusts the listener's certificate through `CURL_CA_BUNDLE`.
const ISSUE_CMD: &str = r#"curl -H "X-Vault-Token: $T" -d '{"common_name":"etcd-1.example.internal","ip_sans":"10.0.0.5"}' https://127.0.0.1:$PORT/v1/etcd/c1/pki/issue/member | jq -r .data.certificate"#;

#[test]
fn story_1_curl_and_jq_over_tls_then_mutual_tls_with_the_issued_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The listener's own certificate (made with openssl; Tresor is not yet a CA here).
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "listener.key",
            "-out",
            "listener.crt",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
    )
    .expect(0, "listener certificate");
    let port = free_port();
    let config = format!(
        "storage \"embedded\" {{\n  path = \"data\"\n}}\n\nlistener \"tcp\" {{\n  address       = \"127.0.0.1:{port}\"\n  tls_cert_file = \"listener.crt\"\n  tls_key_file  = \"listener.key\"\n}}\n\ndisable_mlock = true\n"
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
    let api = |method: &str, path: &str, body: Value| {
        let (code, v) = s.api(method, path, Some(&body.to_string()), Some(&root));
        assert!((200..300).contains(&code), "{method} {path} -> {code}: {v}");
        v
    };

    // The operator: a CA for the etcd cluster c1, a role for its members, a token for them.
    api(
        "POST",
        "sys/mounts/etcd/c1/pki",
        json!({"type": "pki", "config": {"max_lease_ttl": "87600h"}}),
    );
    let ca = api(
        "POST",
        "etcd/c1/pki/root/generate/internal",
        json!({"common_name": "etcd c1 CA", "key_type": "ec", "ttl": "87600h"}),
    );
    write(dir, "ca.pem", &ca["data"]["certificate"]);
    api(
        "POST",
        "etcd/c1/pki/roles/member",
        json!({"allowed_domains": ["example.internal"], "allow_subdomains": true,
               "allow_ip_sans": true, "key_type": "ec", "max_ttl": "720h"}),
    );
    api(
        "PUT",
        "sys/policies/acl/etcd-member",
        json!({"policy": "path \"etcd/c1/pki/issue/member\" {\n  capabilities = [\"update\"]\n}\n"}),
    );
    let t = api(
        "POST",
        "auth/token/create",
        json!({"policies": ["etcd-member"], "ttl": "1h"}),
    )["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The member: the exact curl | jq from the issue.
    let port_s = port.to_string();
    let env = [
        ("T", t.as_str()),
        ("PORT", port_s.as_str()),
        ("CURL_CA_BUNDLE", "listener.crt"),
    ];
    let o = sh(dir, ISSUE_CMD, &env).expect(0, "curl | jq");
    assert!(o.stdout.starts_with("-----BEGIN CERTIFICATE-----"), "{o}");
    std::fs::write(dir.join("member.pem"), &o.stdout).unwrap();
    let text = openssl(dir, &["x509", "-in", "member.pem", "-noout", "-text"]).expect(0, "x509");
    assert!(
        text.stdout
            .contains("Subject: CN = etcd-1.example.internal"),
        "{text}"
    );
    assert!(text.stdout.contains("IP Address:10.0.0.5"), "{text}");
    assert!(
        text.stdout.contains("DNS:etcd-1.example.internal"),
        "{text}"
    );
    let v = openssl(dir, &["verify", "-CAfile", "ca.pem", "member.pem"]).expect(0, "verify");
    assert_eq!(v.stdout.trim(), "member.pem: OK");

    // Mutual TLS: a server and a client certificate from Tresor, openssl on both ends.
    let issue = |cn: &str, ips: &str| {
        let body = json!({"common_name": cn, "ip_sans": ips, "ttl": "1h"}).to_string();
        let (code, v) = s.api("POST", "etcd/c1/pki/issue/member", Some(&body), Some(&t));
        assert_eq!(code, 200, "{v}");
        v
    };
    let srv = issue("etcd-1.example.internal", "127.0.0.1");
    write(dir, "srv.crt", &srv["data"]["certificate"]);
    write(dir, "srv.key", &srv["data"]["private_key"]);
    let cli = issue("etcd-2.example.internal", "");
    write(dir, "cli.crt", &cli["data"]["certificate"]);
    write(dir, "cli.key", &cli["data"]["private_key"]);
    let tls_port = free_port();
    let server = Background(
        Command::new("openssl")
            .current_dir(dir)
            .args([
                "s_server",
                "-accept",
                &format!("127.0.0.1:{tls_port}"),
                "-cert",
                "srv.crt",
                "-key",
                "srv.key",
                "-CAfile",
                "ca.pem",
                "-Verify",
                "1",
                "-verify_return_error",
                "-www",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server"),
    );
    wait_for_port(tls_port, "openssl s_server");
    let client = |extra: &[&str]| {
        let connect = format!("127.0.0.1:{tls_port}");
        let mut args = vec![
            "s_client",
            "-connect",
            &connect,
            "-CAfile",
            "ca.pem",
            "-verify_return_error",
            "-verify_ip",
            "127.0.0.1",
            "-ign_eof",
        ];
        args.extend_from_slice(extra);
        run_with_stdin(
            Command::new("openssl").current_dir(dir).args(&args),
            Some(b"GET / HTTP/1.0\r\n\r\n"),
        )
    };
    let o = client(&["-cert", "cli.crt", "-key", "cli.key"]);
    assert!(o.stdout.contains("Verify return code: 0 (ok)"), "{o}");
    assert!(o.stdout.contains("HTTP/1.0 200 ok"), "{o}");
    // s_server's status page shows the client certificate it verified.
    assert!(o.stdout.contains("Client certificate"), "{o}");
    assert!(o.stdout.contains("CN=etcd-2.example.internal"), "{o}");
    // Mutual authentication is really enforced: no certificate, or one from another CA, fails.
    let o = client(&[]);
    assert!(!o.stdout.contains("HTTP/1.0 200"), "{o}");
    assert!(o.stderr.contains("certificate required"), "{o}");
    let o = client(&["-cert", "listener.crt", "-key", "listener.key"]);
    assert!(!o.stdout.contains("HTTP/1.0 200"), "{o}");
    assert!(o.stderr.contains("unknown ca"), "{o}");
    drop(server);

    // Revoking the token stops issuance at once.
    let (code, _) = s.api(
        "POST",
        "auth/token/revoke",
        Some(&json!({"token": t}).to_string()),
        Some(&root),
    );
    assert_eq!(code, 204);
    let (code, v) = s.api(
        "POST",
        "etcd/c1/pki/issue/member",
        Some(r#"{"common_name":"etcd-1.example.internal","ip_sans":"10.0.0.5"}"#),
        Some(&t),
    );
    assert_eq!(code, 403, "{v}");
    assert!(
        common::errors(&v)
            .iter()
            .any(|e| e.contains("permission denied")),
        "{v}"
    );
    let o = sh(dir, ISSUE_CMD, &env);
    assert_eq!(o.stdout.trim(), "null", "{o}");
}

// ---------------------------------------------------------------------------------------------
// Story 2

#[test]
fn story_2_cfssl_offline_root_and_path_length_0_intermediate_imported_through_config_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("root-csr.json"),
        r#"{"CN":"Offline Root CA","key":{"algo":"ecdsa","size":256},"names":[{"O":"Example Org"}],"ca":{"expiry":"87600h"}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("int-csr.json"),
        r#"{"CN":"Example Intermediate CA","key":{"algo":"ecdsa","size":256},"names":[{"O":"Example Org"}]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("cfssl.json"),
        r#"{"signing":{"default":{"expiry":"8760h"},"profiles":{"intermediate":{"expiry":"43800h","usages":["cert sign","crl sign"],"ca_constraint":{"is_ca":true,"max_path_len":0,"max_path_len_zero":true}}}}}"#,
    )
    .unwrap();
    sh(
        dir,
        "set -e\n\
         cfssl gencert -initca root-csr.json | cfssljson -bare root\n\
         cfssl genkey int-csr.json | cfssljson -bare int\n\
         cfssl sign -ca root.pem -ca-key root-key.pem -config cfssl.json -profile intermediate int.csr | cfssljson -bare int\n\
         cat int-key.pem int.pem root.pem > bundle.pem",
        &[],
    )
    .expect(0, "cfssl offline CA");
    // What cfssl made: a 10-year root; an intermediate it signed with path length 0.
    let year = 365 * 24 * 3600;
    openssl(
        dir,
        &[
            "x509",
            "-in",
            "root.pem",
            "-noout",
            "-checkend",
            &(9 * year).to_string(),
        ],
    )
    .expect(0, "root outlives 9 years");
    openssl(
        dir,
        &[
            "x509",
            "-in",
            "root.pem",
            "-noout",
            "-checkend",
            &(11 * year).to_string(),
        ],
    )
    .expect(1, "root ends within 11 years");
    let int_text = openssl(dir, &["x509", "-in", "int.pem", "-noout", "-text"]).expect(0, "x509");
    assert!(int_text.stdout.contains("CA:TRUE, pathlen:0"), "{int_text}");

    let s = Server::start_dev(dir, free_port());
    let bao = |args: &[&str], what: &str| s.bao_as("root", args).expect(0, what);
    bao(&["secrets", "enable", "pki"], "enable");
    bao(&["secrets", "tune", "-max-lease-ttl=730h", "pki"], "tune");
    let tune = bao(
        &["read", "-format=json", "sys/mounts/pki/tune"],
        "read tune",
    )
    .json();
    assert_eq!(tune["data"]["max_lease_ttl"], 730 * 3600);
    let imported = bao(
        &[
            "write",
            "-format=json",
            "pki/config/ca",
            "pem_bundle=@bundle.pem",
        ],
        "config/ca",
    )
    .json();
    assert_eq!(
        imported["data"]["imported_issuers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        imported["data"]["imported_keys"].as_array().unwrap().len(),
        1
    );
    let crl_url = format!("{}/v1/pki/crl", s.addr);
    bao(
        &[
            "write",
            "pki/config/urls",
            &format!("issuing_certificates={}/v1/pki/ca", s.addr),
            &format!("crl_distribution_points={crl_url}"),
        ],
        "config/urls",
    );
    bao(
        &[
            "write",
            "pki/roles/tls",
            "allowed_domains=example.com",
            "allow_subdomains=true",
            "max_ttl=168h",
        ],
        "role tls",
    );

    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let before = now();
    let leaf = bao(
        &[
            "write",
            "-format=json",
            "pki/issue/tls",
            "common_name=www.example.com",
            "ttl=5m",
        ],
        "issue/tls",
    )
    .json();
    let d = &leaf["data"];
    let expiration = d["expiration"].as_i64().unwrap();
    assert!(
        (before + 295..=now() + 305).contains(&expiration),
        "expiration {expiration} is not five minutes after {before}"
    );
    write(dir, "leaf.pem", &d["certificate"]);
    // Five minutes by the certificate itself: still valid in 4m50s, gone in 5m10s.
    openssl(
        dir,
        &["x509", "-in", "leaf.pem", "-noout", "-checkend", "290"],
    )
    .expect(0, "valid 290s");
    openssl(
        dir,
        &["x509", "-in", "leaf.pem", "-noout", "-checkend", "310"],
    )
    .expect(1, "ends by 310s");
    // It chains to the offline root through the imported intermediate, and only through it.
    let v = openssl(
        dir,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "int.pem",
            "leaf.pem",
        ],
    )
    .expect(0, "verify chain");
    assert_eq!(v.stdout.trim(), "leaf.pem: OK");
    let o = openssl(dir, &["verify", "-CAfile", "root.pem", "leaf.pem"]);
    assert_ne!(o.code, 0, "the leaf must need the intermediate\n{o}");
    let int_pem = std::fs::read_to_string(dir.join("int.pem")).unwrap();
    assert_eq!(d["issuing_ca"].as_str().unwrap().trim(), int_pem.trim());
    assert_eq!(d["ca_chain"].as_array().unwrap().len(), 2, "{d}");
    // Its CRL distribution point is the mount's CRL, which the intermediate signs.
    let ext = openssl(
        dir,
        &[
            "x509",
            "-in",
            "leaf.pem",
            "-noout",
            "-ext",
            "crlDistributionPoints",
        ],
    )
    .expect(0, "cdp");
    assert!(ext.stdout.contains(&format!("URI:{crl_url}")), "{ext}");
    run(Command::new("curl").current_dir(dir).args([
        "-s",
        "--max-time",
        "10",
        "-o",
        "crl.der",
        &crl_url,
    ]))
    .expect(0, "fetch crl");
    let crl = openssl(
        dir,
        &[
            "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "int.pem", "-noout", "-issuer",
        ],
    )
    .expect(0, "openssl crl");
    assert!(
        crl.stderr.contains("verify OK") || crl.stdout.contains("verify OK"),
        "{crl}"
    );
    assert!(crl.stdout.contains("Example Intermediate CA"), "{crl}");

    // The role's max_ttl caps longer requests; other domains are refused.
    let long = bao(
        &[
            "write",
            "-format=json",
            "pki/issue/tls",
            "common_name=api.example.com",
            "ttl=9000h",
        ],
        "long ttl",
    )
    .json();
    let exp = long["data"]["expiration"].as_i64().unwrap();
    assert!(
        (now() + 168 * 3600 - 10..=now() + 168 * 3600 + 10).contains(&exp),
        "{long}"
    );
    let o = s.bao_as(
        "root",
        &["write", "pki/issue/tls", "common_name=www.evil.com"],
    );
    assert_eq!(o.code, 2, "{o}");
    assert!(o.stderr.contains("not allowed"), "{o}");
    // Path length 0: this intermediate may not sign another CA.
    sh(dir, "cfssl genkey int-csr.json | cfssljson -bare sub", &[]).expect(0, "sub csr");
    let o = s.bao_as(
        "root",
        &[
            "write",
            "pki/root/sign-intermediate",
            "csr=@sub.csr",
            "common_name=Sub CA",
        ],
    );
    assert_eq!(o.code, 2, "{o}");
    assert!(o.stderr.contains("path length"), "{o}");
}

// ---------------------------------------------------------------------------------------------
// Story 3

#[test]
fn story_3_revoked_certificate_is_on_the_crl_and_ocsp_says_revoked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let s = Server::start_dev(dir, free_port());
    let bao = |args: &[&str], what: &str| s.bao_as("root", args).expect(0, what);
    bao(&["secrets", "enable", "pki"], "enable");
    bao(&["secrets", "tune", "-max-lease-ttl=8760h", "pki"], "tune");
    let ca = bao(
        &[
            "write",
            "-format=json",
            "pki/root/generate/internal",
            "common_name=Story 3 CA",
            "key_type=ec",
            "ttl=8760h",
        ],
        "root",
    )
    .json();
    write(dir, "ca.pem", &ca["data"]["certificate"]);
    bao(
        &[
            "write",
            "pki/config/urls",
            &format!("ocsp_servers={}/v1/pki/ocsp", s.addr),
            &format!("crl_distribution_points={}/v1/pki/crl", s.addr),
        ],
        "urls",
    );
    bao(
        &[
            "write",
            "pki/roles/web",
            "allowed_domains=example.com",
            "allow_subdomains=true",
            "key_type=ec",
        ],
        "role",
    );
    let issue = |cn: &str, file: &str| {
        let v = bao(
            &[
                "write",
                "-format=json",
                "pki/issue/web",
                &format!("common_name={cn}"),
                "ttl=1h",
            ],
            "issue",
        )
        .json();
        write(dir, file, &v["data"]["certificate"]);
        v["data"]["serial_number"].as_str().unwrap().to_owned()
    };
    let bad = issue("stolen.example.com", "bad.pem");
    let good = issue("fine.example.com", "good.pem");
    let r = bao(
        &[
            "write",
            "-format=json",
            "pki/revoke",
            &format!("serial_number={bad}"),
        ],
        "revoke",
    )
    .json();
    assert!(r["data"]["revocation_time"].as_i64().unwrap() > 0, "{r}");

    // The next CRL lists it (and only it), signed by the CA.
    run(Command::new("curl").current_dir(dir).args([
        "-s",
        "--max-time",
        "10",
        "-o",
        "crl.der",
        &format!("{}/v1/pki/crl", s.addr),
    ]))
    .expect(0, "fetch crl");
    let crl = openssl(
        dir,
        &[
            "crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "ca.pem", "-noout", "-text",
        ],
    )
    .expect(0, "openssl crl");
    assert!(
        crl.stderr.contains("verify OK") || crl.stdout.contains("verify OK"),
        "{crl}"
    );
    assert!(crl.stdout.contains(&openssl_serial(&bad)), "{crl}");
    assert!(!crl.stdout.contains(&openssl_serial(&good)), "{crl}");

    // OCSP over POST at the URL written into the certificate.
    let uri =
        openssl(dir, &["x509", "-in", "bad.pem", "-noout", "-ocsp_uri"]).expect(0, "ocsp uri");
    let url = uri.stdout.trim().to_owned();
    assert_eq!(url, format!("{}/v1/pki/ocsp", s.addr));
    let ocsp = |cert: &str| {
        openssl(
            dir,
            &[
                "ocsp", "-issuer", "ca.pem", "-cert", cert, "-url", &url, "-CAfile", "ca.pem",
            ],
        )
        .expect(0, "openssl ocsp")
    };
    let o = ocsp("bad.pem");
    assert!(o.stdout.contains("bad.pem: revoked"), "{o}");
    assert!(
        o.stderr.contains("Response verify OK") || o.stdout.contains("Response verify OK"),
        "{o}"
    );
    let o = ocsp("good.pem");
    assert!(o.stdout.contains("good.pem: good"), "{o}");
}
