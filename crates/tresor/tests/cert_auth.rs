//! Issue 13, "done when": the seed's people CA, tried as a new user would, with the real tools.
//!
//! Tresor's PKI holds the root. A "users" intermediate is made offline with cfssl (its key never
//! leaves the test's directory), signed by Tresor's root, and signs alice's client certificate
//! (`client auth` usage), as a hardware token's would be. `auth/cert/certs/people` trusts that
//! intermediate; `curl --cert --key` and `bao login -method=cert` log in over the TLS listener
//! and get the mapped policies. A certificate from another CA is refused with a 400 in Vault's
//! `{"errors":[...]}` shape. For revocation the intermediate is also imported into a second PKI
//! mount, which issues bob's certificate (with its OCSP URL): with `ocsp_enabled`, bob logs in
//! while Tresor's own OCSP responder (`/v1/pki_users/ocsp`, on a plain-HTTP listener) says good,
//! and neither logs in nor renews once he is revoked there; the mount's CRL posted to
//! `crls/users` refuses him too.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Out, Server, errors, free_port, run, strings};
use serde_json::{Value, json};

fn sh(dir: &Path, script: &str) -> Out {
    run(Command::new("sh").current_dir(dir).arg("-c").arg(script))
}

fn write(dir: &Path, name: &str, v: &Value) {
    std::fs::write(
        dir.join(name),
        v.as_str()
            .unwrap_or_else(|| panic!("{name}: not a string: {v}")),
    )
    .unwrap();
}

/// `curl` over the TLS listener, presenting `cert`/`key` when given: (status, JSON body).
fn curl_tls(
    s: &Server,
    method: &str,
    path: &str,
    client: Option<(&str, &str)>,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let mut c = Command::new("curl");
    c.current_dir(&s.dir).args([
        "-s",
        "--max-time",
        "20",
        "-X",
        method,
        "-w",
        "\n%{http_code}",
        "--cacert",
        "listener.crt",
    ]);
    if let Some((cert, key)) = client {
        c.args(["--cert", cert, "--key", key]);
    }
    if let Some(t) = token {
        c.args(["-H", &format!("X-Vault-Token: {t}")]);
    }
    if let Some(b) = body {
        c.args(["--data-binary", b]);
    }
    c.arg(format!("{}/v1/{path}", s.addr));
    let o = run(&mut c);
    assert_eq!(o.code, 0, "curl {method} {path}\n{o}");
    let (text, code) = o.stdout.rsplit_once('\n').expect("status line");
    let v = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"))
    };
    (code.trim().parse().unwrap(), v)
}

fn login(s: &Server, cert: &str, key: &str) -> (u16, Value) {
    curl_tls(
        s,
        "POST",
        "auth/cert/login",
        Some((cert, key)),
        None,
        Some("{}"),
    )
}

#[test]
fn the_people_ca_story_curl_and_bao_log_in_and_revocation_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    sh(
        dir,
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
         -keyout listener.key -out listener.crt -days 2 -subj /CN=localhost \
         -addext subjectAltName=IP:127.0.0.1",
    )
    .expect(0, "listener certificate");
    // The TLS listener serves logins; the plain one (loopback only) serves OCSP, as OCSP is
    // usually served over plain HTTP.
    let (port, plain) = (free_port(), free_port());
    let config = format!(
        "storage \"embedded\" {{\n  path = \"data\"\n}}\n\n\
         listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_cert_file = \"listener.crt\"\n  tls_key_file = \"listener.key\"\n}}\n\n\
         listener \"tcp\" {{\n  address = \"127.0.0.1:{plain}\"\n  tls_disable = true\n}}\n\n\
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
    let bao = |args: &[&str], what: &str| s.bao_as(&root, args).expect(0, what);

    // Tresor's root CA.
    bao(&["secrets", "enable", "pki"], "enable pki");
    bao(
        &["secrets", "tune", "-max-lease-ttl=87600h", "pki"],
        "tune pki",
    );
    bao(
        &[
            "write",
            "pki/root/generate/internal",
            "common_name=People Root",
            "key_type=ec",
            "ttl=87600h",
        ],
        "root",
    );

    // The "users" intermediate, made offline with cfssl and signed by Tresor's root; it signs
    // alice's client certificate, with the client auth usage.
    std::fs::write(
        dir.join("users-csr.json"),
        r#"{"CN":"People Users CA","key":{"algo":"ecdsa","size":256},"names":[{"O":"Example People"}]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("alice-csr.json"),
        r#"{"CN":"alice","hosts":["alice@example.org"],"key":{"algo":"ecdsa","size":256},"names":[{"O":"Example People","OU":"engineering"}]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("cfssl.json"),
        r#"{"signing":{"default":{"expiry":"24h"},"profiles":{"client":{"expiry":"24h","usages":["digital signature","client auth"]}}}}"#,
    )
    .unwrap();
    sh(dir, "cfssl genkey users-csr.json | cfssljson -bare users").expect(0, "users csr");
    let users = bao(
        &[
            "write",
            "-format=json",
            "pki/root/sign-intermediate",
            "csr=@users.csr",
            "use_csr_values=true",
            "ttl=8760h",
        ],
        "sign the users intermediate",
    )
    .json();
    write(dir, "users.pem", &users["data"]["certificate"]);
    sh(
        dir,
        "set -e\n\
         cfssl genkey alice-csr.json | cfssljson -bare alice\n\
         cfssl sign -ca users.pem -ca-key users-key.pem -config cfssl.json -profile client alice.csr | cfssljson -bare alice",
    )
    .expect(0, "cfssl signs alice's client certificate");
    sh(
        dir,
        "openssl x509 -in alice.pem -noout -ext extendedKeyUsage | grep -q 'Client Authentication'",
    )
    .expect(0, "alice's certificate has the client auth usage");

    // The method: certs/people trusts the intermediate and maps to the people policy.
    bao(&["secrets", "enable", "-path=secret", "kv-v2"], "kv");
    bao(
        &["kv", "put", "secret/people/handbook", "motto=be kind"],
        "kv put",
    );
    bao(&["kv", "put", "secret/admin/keys", "k=v"], "kv put");
    std::fs::write(
        dir.join("people.hcl"),
        "path \"secret/data/people/*\" { capabilities = [\"read\"] }\n",
    )
    .unwrap();
    bao(&["policy", "write", "people", "people.hcl"], "policy");
    bao(&["auth", "enable", "cert"], "enable cert");
    bao(
        &[
            "write",
            "auth/cert/certs/people",
            "certificate=@users.pem",
            "token_policies=people",
            "display_name=people",
        ],
        "certs/people",
    );
    let r = bao(
        &["read", "-format=json", "auth/cert/certs/people"],
        "read role",
    )
    .json();
    assert_eq!(r["data"]["token_policies"], json!(["people"]));
    let l = bao(&["list", "-format=json", "auth/cert/certs"], "list roles").json();
    assert_eq!(l, json!(["people"]));
    let h = bao(&["path-help", "auth/cert/login"], "path-help");
    assert!(h.stdout.contains("client certificate"), "{h:?}");

    // curl --cert --key logs in; the token has the mapped policy and it applies.
    let (code, v) = login(&s, "alice.pem", "alice-key.pem");
    assert_eq!(code, 200, "{v}");
    let auth = &v["auth"];
    assert_eq!(auth["policies"], json!(["default", "people"]), "{v}");
    assert_eq!(auth["metadata"]["cert_name"], "people");
    assert_eq!(auth["metadata"]["common_name"], "alice");
    let tok = auth["client_token"].as_str().unwrap().to_owned();
    let (code, v) = curl_tls(
        &s,
        "GET",
        "secret/data/people/handbook",
        None,
        Some(&tok),
        None,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["data"]["motto"], "be kind");
    let (code, _) = curl_tls(&s, "GET", "secret/data/admin/keys", None, Some(&tok), None);
    assert_eq!(code, 403);

    // bao login -method=cert with the same certificate.
    let o = s
        .bao(&[
            "login",
            "-method=cert",
            "-client-cert=alice.pem",
            "-client-key=alice-key.pem",
            "-format=json",
        ])
        .expect(0, "bao login -method=cert");
    let v = o.json();
    assert_eq!(v["auth"]["policies"], json!(["default", "people"]), "{v}");
    let o = s
        .bao(&[
            "login",
            "-method=cert",
            "-client-cert=alice.pem",
            "-client-key=alice-key.pem",
            "-format=json",
            "name=people",
        ])
        .expect(0, "bao login -method=cert name=people");
    assert_eq!(o.json()["auth"]["metadata"]["cert_name"], "people");

    // A certificate from another CA, and no certificate at all: a 400 in Vault's shape.
    std::fs::write(
        dir.join("other-csr.json"),
        r#"{"CN":"Other CA","key":{"algo":"ecdsa","size":256}}"#,
    )
    .unwrap();
    sh(
        dir,
        "set -e\n\
         cfssl gencert -initca other-csr.json | cfssljson -bare other\n\
         cfssl genkey alice-csr.json | cfssljson -bare mallory\n\
         cfssl sign -ca other.pem -ca-key other-key.pem -config cfssl.json -profile client mallory.csr | cfssljson -bare mallory",
    )
    .expect(0, "another CA");
    let (code, v) = login(&s, "mallory.pem", "mallory-key.pem");
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        errors(&v),
        ["invalid certificate or no client certificate supplied"]
    );
    let (code, v) = curl_tls(&s, "POST", "auth/cert/login", None, None, Some("{}"));
    assert_eq!(code, 400, "{v}");
    assert!(errors(&v)[0].contains("no client certificate"), "{v}");
    let o = s.bao(&[
        "login",
        "-method=cert",
        "-client-cert=mallory.pem",
        "-client-key=mallory-key.pem",
    ]);
    assert_eq!(o.code, 2, "{o}");
    assert!(o.stderr.contains("invalid certificate"), "{o}");

    // For revocation: the intermediate is imported into pki_users, which issues bob's
    // certificate naming its OCSP responder.
    bao(
        &["secrets", "enable", "-path=pki_users", "pki"],
        "enable pki_users",
    );
    bao(
        &["secrets", "tune", "-max-lease-ttl=8760h", "pki_users"],
        "tune",
    );
    sh(dir, "cat users-key.pem users.pem > users-bundle.pem").expect(0, "bundle");
    bao(
        &[
            "write",
            "pki_users/config/ca",
            "pem_bundle=@users-bundle.pem",
        ],
        "import users CA",
    );
    bao(
        &[
            "write",
            "pki_users/config/urls",
            &format!("ocsp_servers=http://127.0.0.1:{plain}/v1/pki_users/ocsp"),
        ],
        "urls",
    );
    bao(
        &[
            "write",
            "pki_users/roles/people",
            "allow_any_name=true",
            "client_flag=true",
            "server_flag=false",
            "key_type=ec",
            "ttl=1h",
        ],
        "role",
    );
    let bob = bao(
        &[
            "write",
            "-format=json",
            "pki_users/issue/people",
            "common_name=bob",
        ],
        "issue bob",
    )
    .json();
    write(dir, "bob.pem", &bob["data"]["certificate"]);
    write(dir, "bob-key.pem", &bob["data"]["private_key"]);
    let bob_serial = bob["data"]["serial_number"].as_str().unwrap().to_owned();

    // With OCSP on, bob logs in while Tresor's responder says good, and renews.
    bao(
        &["write", "auth/cert/certs/people", "ocsp_enabled=true"],
        "ocsp on",
    );
    let (code, v) = login(&s, "bob.pem", "bob-key.pem");
    assert_eq!(code, 200, "{v}");
    let bob_tok = v["auth"]["client_token"].as_str().unwrap().to_owned();
    s.bao_as(&bob_tok, &["token", "renew"])
        .expect(0, "renew before revocation");
    // alice's certificate names no responder: with OCSP on and failing closed she is refused.
    let (code, v) = login(&s, "alice.pem", "alice-key.pem");
    assert_eq!(code, 400, "{v}");
    assert!(errors(&v)[0].contains("OCSP"), "{v}");

    // Revoked in Tresor's PKI: the login and the renewal are refused.
    bao(
        &[
            "write",
            "pki_users/revoke",
            &format!("serial_number={bob_serial}"),
        ],
        "revoke bob",
    );
    let (code, v) = login(&s, "bob.pem", "bob-key.pem");
    assert_eq!(code, 400, "{v}");
    assert_eq!(
        errors(&v),
        [
            "invalid certificate or no client certificate supplied: the certificate is revoked (OCSP)"
        ]
    );
    let o = s.bao_as(&bob_tok, &["token", "renew"]);
    assert_ne!(o.code, 0, "renewal after revocation must fail\n{o}");
    assert!(o.stderr.contains("revoked"), "{o}");

    // Without OCSP, the mount's CRL posted to crls/users refuses him as well.
    bao(
        &["write", "auth/cert/certs/people", "ocsp_enabled=false"],
        "ocsp off",
    );
    let (code, v) = login(&s, "bob.pem", "bob-key.pem");
    assert_eq!(code, 200, "no CRL yet: {v}");
    let (code, crl) = s.curl("GET", "pki_users/crl/pem", None, None);
    assert_eq!(code, 200);
    std::fs::write(dir.join("users.crl"), crl).unwrap();
    bao(
        &["write", "auth/cert/crls/users", "crl=@users.crl"],
        "post CRL",
    );
    let c = bao(
        &["read", "-format=json", "auth/cert/crls/users"],
        "read CRL",
    )
    .json();
    assert_eq!(c["data"]["serials"].as_object().unwrap().len(), 1, "{c}");
    let (code, v) = login(&s, "bob.pem", "bob-key.pem");
    assert_eq!(code, 400, "{v}");
    assert!(errors(&v)[0].contains("revoked (CRL)"), "{v}");
    let (code, v) = login(&s, "alice.pem", "alice-key.pem");
    assert_eq!(code, 200, "alice is not on the CRL: {v}");
    bao(&["delete", "auth/cert/crls/users"], "delete CRL");
    let (code, v) = login(&s, "bob.pem", "bob-key.pem");
    assert_eq!(code, 200, "{v}");
}
