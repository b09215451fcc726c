//! Issue 14 end to end: the JWT/OIDC and Kubernetes auth methods on a real `tresor server
//! -dev`, driven with the `bao` CLI and curl. Everything the server talks to runs on
//! 127.0.0.1 and is started here: keys come from openssl and JWTs are signed by PyJWT (an
//! independent implementation), a static JWKS is served by `python3 -m http.server`, the
//! browser flow runs against `oidc-provider-mock` (PyPI, installed by .ci/run), and the
//! Kubernetes logins are reviewed by a small HTTPS TokenReview endpoint written below in
//! Python: no real Kubernetes API server is exercised.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, clean_command, errors, free_port, run, run_with_stdin};
use serde_json::{Value, json};

/// A helper process, killed by PID when the test ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command) -> Proc {
    Proc(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start helper"),
    )
}

/// Waits until `url` answers over HTTP(S) (any status), within 20 seconds.
fn wait_http(url: &str, cacert: Option<&std::path::Path>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut c = Command::new("curl");
        c.args(["-s", "-o", "/dev/null", "--max-time", "2"]);
        if let Some(ca) = cacert {
            c.arg("--cacert").arg(ca);
        }
        if c.arg(url).status().map(|s| s.success()).unwrap_or(false) {
            return;
        }
        assert!(Instant::now() < deadline, "{url} did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn openssl_rsa(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, String) {
    let key = dir.join(format!("{name}.pem"));
    run(Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key))
    .expect(0, "openssl genpkey");
    let public = run(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key))
    .expect(0, "openssl pkey")
    .stdout;
    (key, public)
}

const SIGN_PY: &str = r#"
import json, sys, jwt
key = open(sys.argv[1]).read()
claims = json.loads(sys.argv[2])
headers = {"kid": sys.argv[3]} if len(sys.argv) > 3 else None
print(jwt.encode(claims, key, algorithm="RS256", headers=headers))
"#;

/// A JWT signed with PyJWT.
fn sign(key: &std::path::Path, claims: &Value, kid: Option<&str>) -> String {
    let mut c = Command::new("python3");
    c.args(["-c", SIGN_PY]).arg(key).arg(claims.to_string());
    if let Some(k) = kid {
        c.arg(k);
    }
    run(&mut c)
        .expect(0, "sign with PyJWT")
        .stdout
        .trim()
        .to_owned()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn root_api(s: &Server, method: &str, path: &str, body: Value) -> (u16, Value) {
    s.api(method, path, Some(&body.to_string()), Some("root"))
}

fn ok(s: &Server, method: &str, path: &str, body: Value) -> Value {
    let (code, v) = root_api(s, method, path, body.clone());
    assert!(
        (200..300).contains(&code),
        "{method} {path} {body} -> {code}: {v}"
    );
    v
}

fn accessor(s: &Server, mount: &str) -> String {
    let (_, v) = s.api("GET", "sys/auth", None, Some("root"));
    v["data"][format!("{mount}/")]["accessor"]
        .as_str()
        .unwrap_or_else(|| panic!("no accessor for {mount}: {v}"))
        .to_owned()
}

/// An external group `name` with policy `policy`, aliased as `alias` on `mount`.
fn external_group(s: &Server, name: &str, policy: &str, alias: &str, mount: &str) {
    let g = ok(
        s,
        "PUT",
        "identity/group",
        json!({"name": name, "type": "external", "policies": [policy]}),
    );
    let id = g["data"]["id"].as_str().expect("group id").to_owned();
    ok(
        s,
        "PUT",
        "identity/group-alias",
        json!({"name": alias, "mount_accessor": accessor(s, mount), "canonical_id": id}),
    );
}

/// Policies `dev` (secret/data/app) and `eng` (secret/data/eng) with a secret each.
fn policies(s: &Server) {
    for (name, path) in [("dev", "secret/data/app"), ("eng", "secret/data/eng")] {
        let p = format!(r#"path "{path}" {{ capabilities = ["read"] }}"#);
        ok(
            s,
            "PUT",
            &format!("sys/policies/acl/{name}"),
            json!({"policy": p}),
        );
    }
    s.bao_as("root", &["kv", "put", "secret/app", "k=app"])
        .expect(0, "kv put");
    s.bao_as("root", &["kv", "put", "secret/eng", "k=eng"])
        .expect(0, "kv put");
}

fn can_read(s: &Server, token: &str, path: &str) -> bool {
    s.bao_as(token, &["kv", "get", path]).code == 0
}

#[test]
fn jwt_logins_with_a_local_key_and_a_static_jwks() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    policies(&s);
    s.bao_as("root", &["auth", "enable", "jwt"])
        .expect(0, "auth enable jwt");
    let (key, public) = openssl_rsa(dir.path(), "signer");
    let (other_key, _) = openssl_rsa(dir.path(), "other");

    // Bad configurations are a 400 naming the field, and nothing is stored.
    let (code, v) = root_api(
        &s,
        "PUT",
        "auth/jwt/config",
        json!({"jwt_validation_pubkeys": ["-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"]}),
    );
    assert_eq!(code, 400, "{v}");
    assert!(errors(&v)[0].contains("jwt_validation_pubkeys"), "{v}");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (code, v) = root_api(
        &s,
        "PUT",
        "auth/jwt/config",
        json!({"oidc_discovery_url": dead}),
    );
    assert_eq!(code, 400, "{v}");
    assert!(errors(&v)[0].contains("oidc_discovery_url"), "{v}");
    let (code, _) = s.api("GET", "auth/jwt/config", None, Some("root"));
    assert_eq!(code, 404, "nothing was stored");

    ok(
        &s,
        "PUT",
        "auth/jwt/config",
        json!({"jwt_validation_pubkeys": [public], "bound_issuer": "https://ci.example"}),
    );
    ok(
        &s,
        "PUT",
        "auth/jwt/role/ci",
        json!({"role_type": "jwt", "bound_audiences": ["tresor"], "user_claim": "sub",
               "groups_claim": "groups", "token_policies": ["dev"], "token_ttl": "10m"}),
    );
    external_group(&s, "engineering", "eng", "eng", "jwt");
    let t = now();
    let claims = |aud: &str, exp: i64| json!({"iss": "https://ci.example", "sub": "builder-1", "aud": aud, "iat": t, "exp": exp, "groups": ["eng"]});

    // bao login through the HTTP API with a JWT PyJWT signed.
    let jwt = sign(&key, &claims("tresor", t + 300), None);
    let o = s
        .bao(&[
            "write",
            "-format=json",
            "auth/jwt/login",
            "role=ci",
            &format!("jwt={jwt}"),
        ])
        .expect(0, "jwt login");
    let auth = &o.json()["auth"];
    let token = auth["client_token"].as_str().unwrap().to_owned();
    assert_eq!(auth["token_policies"], json!(["default", "dev"]), "{auth}");
    assert!(
        can_read(&s, &token, "secret/app"),
        "the role's policy applies"
    );
    assert!(
        can_read(&s, &token, "secret/eng"),
        "the groups claim maps to the external group's policy"
    );
    let look = s
        .bao_as(&token, &["token", "lookup", "-format=json"])
        .expect(0, "lookup")
        .json();
    assert_eq!(look["data"]["identity_policies"], json!(["eng"]), "{look}");

    // `tresor login -method=jwt` posts role and jwt to auth/jwt/login and keeps the token.
    let jwt = sign(&key, &claims("tresor", t + 300), None);
    let o = run(clean_command(env!("CARGO_BIN_EXE_tresor"))
        .current_dir(&s.dir)
        .env("HOME", &s.home)
        .env("VAULT_ADDR", &s.addr)
        .args([
            "login",
            "-method=jwt",
            "-format=json",
            "role=ci",
            &format!("jwt={jwt}"),
        ]))
    .expect(0, "tresor login -method=jwt");
    let cli_token = o.json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(can_read(&s, &cli_token, "secret/app"));

    // Wrong audience, expired, bad signature: 400 in Vault's error shape.
    for (jwt, want) in [
        (sign(&key, &claims("someone-else", t + 300), None), "aud"),
        (sign(&key, &claims("tresor", t - 3600), None), "expired"),
        (
            sign(&other_key, &claims("tresor", t + 300), None),
            "signature",
        ),
    ] {
        let (code, v) = s.api(
            "PUT",
            "auth/jwt/login",
            Some(&json!({"role": "ci", "jwt": jwt}).to_string()),
            None,
        );
        assert_eq!(code, 400, "{want}: {v}");
        let errs = errors(&v);
        assert!(errs.len() == 1 && errs[0].contains(want), "{want}: {v}");
    }

    // A second mount verifies with a JWKS served by a plain static file server.
    let jwk = run(Command::new("python3").args([
        "-c",
        "import json,sys,jwt; from cryptography.hazmat.primitives import serialization as s; \
         k=s.load_pem_private_key(open(sys.argv[1],'rb').read(),None).public_key(); \
         j=json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(k)); j['kid']='k1'; j['use']='sig'; j['alg']='RS256'; \
         print(json.dumps({'keys':[j]}))",
    ]).arg(&key))
    .expect(0, "JWKS with PyJWT")
    .stdout;
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("jwks.json"), jwk).unwrap();
    let port = free_port();
    let _http = spawn(
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(&www),
    );
    let jwks_url = format!("http://127.0.0.1:{port}/jwks.json");
    wait_http(&jwks_url, None);
    // A mount verifying with a JWKS: its config, a role, and a login with `key`'s token.
    let enable = |mount: &str| {
        s.bao_as(
            "root",
            &["auth", "enable", &format!("-path={mount}"), "jwt"],
        )
        .expect(0, "auth enable");
    };
    let configure = |mount: &str, config: Value| {
        ok(&s, "PUT", &format!("auth/{mount}/config"), config);
        ok(
            &s,
            "PUT",
            &format!("auth/{mount}/role/ci"),
            json!({"role_type": "jwt", "bound_audiences": "tresor", "user_claim": "sub", "token_policies": "dev"}),
        );
    };
    let login = |mount: &str, key: &std::path::Path| {
        let jwt = sign(key, &claims("tresor", t + 300), Some("k1"));
        s.api(
            "PUT",
            &format!("auth/{mount}/login"),
            Some(&json!({"role": "ci", "jwt": jwt}).to_string()),
            None,
        )
    };
    enable("jwks");
    configure("jwks", json!({"jwks_url": jwks_url}));
    let (code, v) = login("jwks", &key);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["auth"]["policies"], json!(["default", "dev"]));
    let (code, v) = login("jwks", &other_key);
    assert_eq!(code, 400, "{v}");

    // The same JWKS over HTTPS with a self-signed CA:TRUE certificate (what
    // `openssl req -x509` makes, and what hvac's suite serves Vault with), named in
    // jwks_ca_pem: Go, and so Vault, accept a server certificate that is itself the trusted
    // CA. Another self-signed certificate named instead is refused.
    let d = dir.path();
    for name in ["served", "other"] {
        let args = format!(
            "req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
             -addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:TRUE \
             -keyout {name}.key -out {name}.crt"
        );
        run(Command::new("openssl")
            .current_dir(d)
            .args(args.split_whitespace()))
        .expect(0, &args);
    }
    let tls_port = free_port();
    let _https = spawn(
        Command::new("python3")
            .current_dir(d)
            .args(["-c", HTTPS_STATIC_PY, &tls_port.to_string()])
            .arg(&www)
            .args(["served.crt", "served.key"]),
    );
    let tls_url = format!("https://127.0.0.1:{tls_port}/jwks.json");
    wait_http(&tls_url, Some(&d.join("served.crt")));
    enable("jwks-tls");
    let pem = |name: &str| std::fs::read_to_string(d.join(format!("{name}.crt"))).unwrap();
    let (code, v) = root_api(
        &s,
        "PUT",
        "auth/jwks-tls/config",
        json!({"jwks_url": tls_url, "jwks_ca_pem": pem("other")}),
    );
    assert_eq!(code, 400, "{v}");
    assert!(errors(&v)[0].contains("invalid peer certificate"), "{v}");
    configure(
        "jwks-tls",
        json!({"jwks_url": tls_url, "jwks_ca_pem": pem("served")}),
    );
    let (code, v) = login("jwks-tls", &key);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["auth"]["policies"], json!(["default", "dev"]));
}

/// A static file server over HTTPS: port, directory, certificate, key.
const HTTPS_STATIC_PY: &str = r#"
import functools, http.server, ssl, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[2])
srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[3], sys.argv[4])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"#;

#[test]
fn the_oidc_browser_flow_with_oidc_provider_mock() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    policies(&s);
    let port = free_port();
    let _idp = spawn(clean_command("oidc-provider-mock").args(["--port", &port.to_string()]));
    let idp = format!("http://127.0.0.1:{port}");
    wait_http(&format!("{idp}/.well-known/openid-configuration"), None);
    run_with_stdin(
        Command::new("curl").args([
            "-sf",
            "-X",
            "PUT",
            "-H",
            "content-type: application/json",
            "--data-binary",
            "@-",
            &format!("{idp}/users/alice"),
        ]),
        Some(br#"{"email": "alice@example.org", "groups": ["eng"]}"#),
    )
    .expect(0, "set alice's claims");

    s.bao_as("root", &["auth", "enable", "oidc"])
        .expect(0, "auth enable oidc");
    ok(
        &s,
        "PUT",
        "auth/oidc/config",
        json!({"oidc_discovery_url": idp, "oidc_client_id": "tresor", "oidc_client_secret": "s3cret", "default_role": "web"}),
    );
    let (_, cfg) = s.api("GET", "auth/oidc/config", None, Some("root"));
    assert!(cfg["data"].get("oidc_client_secret").is_none(), "{cfg}");
    let redirect = "http://localhost:8250/oidc/callback";
    ok(
        &s,
        "PUT",
        "auth/oidc/role/web",
        json!({"user_claim": "email", "groups_claim": "groups", "allowed_redirect_uris": [redirect],
               "oidc_scopes": ["email"], "token_policies": ["dev"]}),
    );
    external_group(&s, "engineering", "eng", "eng", "oidc");
    let (code, v) = s.api(
        "PUT",
        "auth/oidc/oidc/auth_url",
        Some(&json!({"redirect_uri": "http://evil.example/cb"}).to_string()),
        None,
    );
    assert_eq!(code, 400, "{v}");

    // One browser login: get the URL, post the user as the provider's form does, and hand
    // the code and state to the callback (GET the first time, POST the second).
    let browser = |post: bool| -> Value {
        let (code, v) = s.api(
            "PUT",
            "auth/oidc/oidc/auth_url",
            Some(&json!({"redirect_uri": redirect}).to_string()),
            None,
        );
        assert_eq!(code, 200, "{v}");
        let url = v["data"]["auth_url"].as_str().unwrap().to_owned();
        assert!(
            url.starts_with(&idp) && url.contains("code_challenge_method=S256"),
            "{url}"
        );
        let location = run(Command::new("curl").args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{redirect_url}",
            "--max-time",
            "20",
            "-d",
            "sub=alice",
            &url,
        ]))
        .expect(0, "post the user")
        .stdout;
        let loc =
            reqwest::Url::parse(location.trim()).unwrap_or_else(|e| panic!("{location}: {e}"));
        assert!(loc.as_str().starts_with(redirect), "{loc}");
        let q: std::collections::HashMap<String, String> = loc
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let (code, v) = if post {
            s.api(
                "POST",
                "auth/oidc/oidc/callback",
                Some(&json!({"state": q["state"], "code": q["code"]}).to_string()),
                None,
            )
        } else {
            s.api(
                "GET",
                &format!(
                    "auth/oidc/oidc/callback?state={}&code={}",
                    q["state"], q["code"]
                ),
                None,
                None,
            )
        };
        assert_eq!(code, 200, "callback: {v}");
        v
    };
    for post in [false, true] {
        let v = browser(post);
        let token = v["auth"]["client_token"].as_str().unwrap().to_owned();
        assert_eq!(
            v["auth"]["token_policies"],
            json!(["default", "dev"]),
            "{v}"
        );
        assert_eq!(v["auth"]["identity_policies"], json!(["eng"]), "{v}");
        assert!(can_read(&s, &token, "secret/app"));
        assert!(
            can_read(&s, &token, "secret/eng"),
            "the groups claim maps to the external group"
        );
    }
    // A state serves one callback only.
    let (code, v) = s.api(
        "GET",
        "auth/oidc/oidc/callback?state=made-up&code=x",
        None,
        None,
    );
    assert_eq!(code, 400, "{v}");
}

const TOKEN_REVIEW_PY: &str = r#"
import http.server, json, ssl, sys, jwt
port, cert, key, sa_pub, reviewer = sys.argv[1:6]
public = open(sa_pub).read()
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        if self.path != "/apis/authentication.k8s.io/v1/tokenreviews":
            return self.reply(404, {"kind": "Status", "message": "not found"})
        want = open(reviewer[1:]).read().strip() if reviewer.startswith("@") else reviewer
        if self.headers.get("authorization") != "Bearer " + want:
            return self.reply(401, {"kind": "Status", "message": "Unauthorized", "code": 401})
        spec = body.get("spec", {})
        auds = spec.get("audiences") or ["https://kubernetes.default.svc"]
        try:
            c = jwt.decode(spec.get("token", ""), public, algorithms=["RS256"], audience=auds)
            k = c["kubernetes.io"]
            status = {"authenticated": True, "audiences": auds, "user": {
                "username": "system:serviceaccount:%s:%s" % (k["namespace"], k["serviceaccount"]["name"]),
                "uid": k["serviceaccount"]["uid"], "groups": ["system:serviceaccounts"]}}
        except Exception as e:
            status = {"authenticated": False, "error": str(e)}
        self.reply(201, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec, "status": status})
    def reply(self, code, obj):
        b = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
srv = http.server.HTTPServer(("127.0.0.1", int(port)), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"#;

/// The TokenReview endpoint below on 127.0.0.1 over HTTPS, with a CA and a server certificate
/// it signs made in `d` (which must hold `sa.pub`): the process, its URL and the CA's PEM.
/// `reviewer`: the bearer token it insists on, or `@path` to read it from a file per request.
fn token_review_api(d: &std::path::Path, reviewer: &str) -> (Proc, String, String) {
    // A CA and a server certificate it signs (rustls refuses a CA certificate as a leaf).
    for args in [
        "req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca -keyout ca.key -out ca.crt",
        "req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout api.key -out api.csr",
    ] {
        run(Command::new("openssl").current_dir(d).args(args.split(' '))).expect(0, args);
    }
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(Command::new("openssl").current_dir(d).args([
        "x509",
        "-req",
        "-in",
        "api.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "api.crt",
    ]))
    .expect(0, "API server certificate");
    let port = free_port();
    let api = spawn(Command::new("python3").current_dir(d).args([
        "-c",
        TOKEN_REVIEW_PY,
        &port.to_string(),
        "api.crt",
        "api.key",
        "sa.pub",
        reviewer,
    ]));
    let host = format!("https://127.0.0.1:{port}");
    wait_http(&format!("{host}/"), Some(&d.join("ca.crt")));

    (
        api,
        host,
        std::fs::read_to_string(d.join("ca.crt")).unwrap(),
    )
}

#[test]
fn kubernetes_logins_reviewed_by_a_local_token_review_endpoint() {
    // No real Kubernetes API server is exercised: the endpoint below verifies service-account
    // JWTs with a key made here and answers in TokenReview's shape.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = Server::start_dev(d, free_port());
    policies(&s);
    let (sa_key, sa_pub) = openssl_rsa(d, "sa-signer");
    let (other_key, _) = openssl_rsa(d, "stranger");
    std::fs::write(d.join("sa.pub"), &sa_pub).unwrap();
    let reviewer = sign(
        &other_key,
        &json!({"sub": "system:serviceaccount:kube-system:reviewer"}),
        None,
    );
    let (_api, host, ca) = token_review_api(d, &reviewer);

    s.bao_as("root", &["auth", "enable", "kubernetes"])
        .expect(0, "auth enable kubernetes");
    ok(
        &s,
        "PUT",
        "auth/kubernetes/config",
        json!({"kubernetes_host": host, "kubernetes_ca_cert": ca, "token_reviewer_jwt": reviewer}),
    );
    ok(
        &s,
        "PUT",
        "auth/kubernetes/role/builder",
        json!({"bound_service_account_names": ["builder"], "bound_service_account_namespaces": ["ci"],
               "audience": "tresor", "token_policies": ["dev"]}),
    );
    let t = now();
    let sa_jwt = |key: &std::path::Path, ns: &str| {
        sign(
            key,
            &json!({"iss": "https://kubernetes.default.svc.cluster.local", "aud": ["tresor"],
                    "sub": format!("system:serviceaccount:{ns}:builder"), "iat": t, "exp": t + 600,
                    "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": "builder", "uid": "uid-1"}}}),
            None,
        )
    };
    let o = s
        .bao(&[
            "write",
            "-format=json",
            "auth/kubernetes/login",
            "role=builder",
            &format!("jwt={}", sa_jwt(&sa_key, "ci")),
        ])
        .expect(0, "kubernetes login");
    let auth = &o.json()["auth"];
    assert_eq!(
        auth["metadata"]["service_account_namespace"], "ci",
        "{auth}"
    );
    assert!(can_read(
        &s,
        auth["client_token"].as_str().unwrap(),
        "secret/app"
    ));

    // Another namespace, and a token the API server does not authenticate, are refused.
    for (jwt, want) in [
        (sa_jwt(&sa_key, "prod"), "namespace not authorized"),
        (sa_jwt(&other_key, "ci"), "service account unauthorized"),
    ] {
        let (code, v) = s.api(
            "PUT",
            "auth/kubernetes/login",
            Some(&json!({"role": "builder", "jwt": jwt}).to_string()),
            None,
        );
        assert_eq!(code, 400, "{want}: {v}");
        assert!(errors(&v)[0].contains(want), "{want}: {v}");
    }
}

/// Beyond Vault, both in issue 14: the reviewer JWT read from a file and read again when the
/// kubelet rotates it, and a role whose logins local keys decide without TokenReview. No real
/// Kubernetes API server is exercised (the endpoint above stands in for one).
#[test]
fn kubernetes_reviewer_jwt_file_rotation_and_local_keys_roles() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = Server::start_dev(d, free_port());
    policies(&s);
    let (sa_key, sa_pub) = openssl_rsa(d, "sa-signer");
    let (other_key, _) = openssl_rsa(d, "stranger");
    std::fs::write(d.join("sa.pub"), &sa_pub).unwrap();
    let reviewer = |n: u32| {
        sign(
            &other_key,
            &json!({"sub": format!("system:serviceaccount:kube-system:reviewer-{n}")}),
            None,
        )
    };
    // The endpoint reads the token it insists on from `expected` at each request; Tresor
    // reads its reviewer JWT from `token`. Both change together, as when a token rotates.
    let rotate = |jwt: &str| {
        std::fs::write(d.join("expected"), jwt).unwrap();
        let tmp = d.join("token.new");
        std::fs::write(&tmp, format!("{jwt}\n")).unwrap();
        std::fs::rename(&tmp, d.join("token")).unwrap();
    };
    rotate(&reviewer(1));
    let expected = format!("@{}", d.join("expected").display());
    let (api, host, ca) = token_review_api(d, &expected);
    s.bao_as("root", &["auth", "enable", "kubernetes"])
        .expect(0, "auth enable kubernetes");
    let token_file = d.join("token").display().to_string();

    // Bad reviewer files are refused, naming the field, never quoting the file.
    std::fs::write(d.join("not-a-jwt"), "s3cret-line\n").unwrap();
    // Huge; a JWT with more after it; a link to a file of the host that is no JWT.
    std::fs::write(d.join("huge"), "a".repeat(70 * 1024)).unwrap();
    std::fs::write(
        d.join("jwt-and-more"),
        format!("{}\ns3cret-line\n", reviewer(9)),
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/passwd", d.join("link")).unwrap();
    let file = |name: &str| d.join(name).display().to_string();
    for (extra, want) in [
        (
            json!({"token_reviewer_jwt_file": file("huge")}),
            "larger than 65536 bytes",
        ),
        (
            json!({"token_reviewer_jwt_file": file("jwt-and-more")}),
            "does not hold a JWT",
        ),
        (
            json!({"token_reviewer_jwt_file": file("link")}),
            "does not hold a JWT",
        ),
        (
            json!({"token_reviewer_jwt_file": "relative/token"}),
            "use an absolute path",
        ),
        (
            json!({"token_reviewer_jwt_file": d.join("missing").display().to_string()}),
            "No such file",
        ),
        (
            json!({"token_reviewer_jwt_file": d.display().to_string()}),
            "not a regular file",
        ),
        (
            json!({"token_reviewer_jwt_file": d.join("not-a-jwt").display().to_string()}),
            "does not hold a JWT",
        ),
        (
            json!({"token_reviewer_jwt_file": token_file, "token_reviewer_jwt": reviewer(1)}),
            "cannot both be set",
        ),
    ] {
        let mut body = json!({"kubernetes_host": host, "kubernetes_ca_cert": ca});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (code, v) = root_api(&s, "PUT", "auth/kubernetes/config", body);
        assert_eq!(code, 400, "{want}: {v}");
        let e = &errors(&v)[0];
        assert!(e.contains(want), "{want}: {v}");
        assert!(!e.contains("s3cret-line"), "{v}");
    }
    let (code, v) = root_api(&s, "GET", "auth/kubernetes/config", json!({}));
    assert_eq!(code, 404, "nothing stored: {v}");

    ok(
        &s,
        "PUT",
        "auth/kubernetes/config",
        json!({"kubernetes_host": host, "kubernetes_ca_cert": ca, "token_reviewer_jwt_file": token_file}),
    );
    let cfg = ok(&s, "GET", "auth/kubernetes/config", json!({}));
    assert_eq!(
        cfg["data"]["token_reviewer_jwt_file"],
        token_file.as_str(),
        "{cfg}"
    );
    assert_eq!(cfg["data"]["token_reviewer_jwt_set"], false, "{cfg}");
    ok(
        &s,
        "PUT",
        "auth/kubernetes/role/builder",
        json!({"bound_service_account_names": ["builder"], "bound_service_account_namespaces": ["ci"],
               "token_policies": ["dev"]}),
    );
    let t = now();
    let sa_jwt = |key: &std::path::Path, exp: Option<i64>| {
        let mut c = json!({"iss": "https://kubernetes.default.svc.cluster.local",
                "aud": ["https://kubernetes.default.svc"],
                "sub": "system:serviceaccount:ci:builder", "iat": t,
                "kubernetes.io": {"namespace": "ci", "serviceaccount": {"name": "builder", "uid": "uid-1"}}});
        if let Some(e) = exp {
            c["exp"] = json!(e);
        }
        sign(key, &c, None)
    };
    let login = |role: &str, jwt: &str| {
        s.api(
            "PUT",
            "auth/kubernetes/login",
            Some(&json!({"role": role, "jwt": jwt}).to_string()),
            None,
        )
    };
    let good = sa_jwt(&sa_key, Some(t + 600));
    let (code, v) = login("builder", &good);
    assert_eq!(code, 200, "{v}");
    // The kubelet rotates the token: the next login reads the new one (the endpoint now
    // refuses the old one with a 401).
    rotate(&reviewer(2));
    let (code, v) = login("builder", &good);
    assert_eq!(code, 200, "after rotation: {v}");
    // The endpoint wants a token Tresor's file does not have: refused, saying the API answered.
    std::fs::write(d.join("expected"), reviewer(3)).unwrap();
    let (code, v) = login("builder", &good);
    assert_eq!(code, 400, "{v}");
    assert!(errors(&v)[0].contains("401"), "{v}");
    // The file removed: logins fail closed, naming the setting.
    std::fs::remove_file(d.join("token")).unwrap();
    let (code, v) = login("builder", &good);
    assert_eq!(code, 400, "{v}");
    assert!(errors(&v)[0].contains("token_reviewer_jwt_file"), "{v}");

    // local_keys: no TokenReview at all (the endpoint is stopped), the config's pem_keys
    // decide, and the token must carry exp.
    drop(api);
    let (code, v) = root_api(
        &s,
        "PUT",
        "auth/kubernetes/role/local",
        json!({"bound_service_account_names": ["builder"], "bound_service_account_namespaces": ["ci"],
               "review_mode": "sometimes"}),
    );
    assert_eq!(code, 400, "{v}");
    assert!(errors(&v)[0].contains("review_mode"), "{v}");
    ok(
        &s,
        "PUT",
        "auth/kubernetes/role/local",
        json!({"bound_service_account_names": ["builder"], "bound_service_account_namespaces": ["ci"],
               "review_mode": "local_keys", "token_policies": ["dev"]}),
    );
    let role = ok(&s, "GET", "auth/kubernetes/role/local", json!({}));
    assert_eq!(role["data"]["review_mode"], "local_keys", "{role}");
    let role = ok(&s, "GET", "auth/kubernetes/role/builder", json!({}));
    assert_eq!(role["data"]["review_mode"], "token_review", "{role}");
    // Without pem_keys nothing vouches for a token: refused.
    let (code, v) = login("local", &good);
    assert_eq!(code, 400, "{v}");
    assert!(errors(&v)[0].contains("no pem_keys"), "{v}");
    ok(
        &s,
        "PUT",
        "auth/kubernetes/config",
        json!({"kubernetes_host": host, "kubernetes_ca_cert": ca, "pem_keys": [sa_pub]}),
    );
    let (code, v) = login("local", &good);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["auth"]["metadata"]["service_account_uid"], "uid-1", "{v}");
    assert!(can_read(
        &s,
        v["auth"]["client_token"].as_str().unwrap(),
        "secret/app"
    ));
    for (jwt, want) in [
        (sa_jwt(&other_key, Some(t + 600)), "invalid jwt"),
        (sa_jwt(&sa_key, Some(t - 3600)), "expired"),
        (sa_jwt(&sa_key, None), "no exp claim"),
    ] {
        let (code, v) = login("local", &jwt);
        assert_eq!(code, 400, "{want}: {v}");
        assert!(errors(&v)[0].contains(want), "{want}: {v}");
    }
    // The TokenReview role still needs the (stopped) API server: refused.
    let (code, v) = login("builder", &good);
    assert_eq!(code, 400, "{v}");
    assert!(errors(&v)[0].contains("lookup failed"), "{v}");
    // No reviewer JWT, and nothing of the files it refused, reaches the server's log.
    let log = s.log();
    for n in [1, 2, 3, 9] {
        assert!(!log.contains(&reviewer(n)), "reviewer {n} in the log");
    }
    assert!(!log.contains("s3cret-line") && !log.contains("root:x:0"));
}

/// `tresor login ...` running in the background against `s`, its output in files.
struct CliLogin<'a> {
    s: &'a Server,
    child: std::process::Child,
    out: std::path::PathBuf,
    err: std::path::PathBuf,
}

impl<'a> CliLogin<'a> {
    fn start(s: &'a Server, dir: &std::path::Path, args: &[&str]) -> Self {
        let (out, err) = (dir.join("login.out"), dir.join("login.err"));
        let child = clean_command(env!("CARGO_BIN_EXE_tresor"))
            .args(args)
            .env("VAULT_ADDR", &s.addr)
            .env("HOME", &s.home)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("tresor login");
        CliLogin { s, child, out, err }
    }

    /// Waits (30 s at most) for a successful login; its token, which the CLI stored.
    fn finish(mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("tresor login did not finish");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let out = std::fs::read_to_string(&self.out).unwrap();
        let err = std::fs::read_to_string(&self.err).unwrap();
        assert!(status.success(), "{out}\n{err}");
        let v: Value = serde_json::from_str(&out).expect("json");
        let token = v["auth"]["client_token"].as_str().unwrap().to_owned();
        let stored = std::fs::read_to_string(self.s.home.join(".vault-token")).unwrap();
        assert_eq!(stored.trim(), token);
        token
    }
}

/// An OIDC provider offering the device authorization grant (RFC 8628), which
/// oidc-provider-mock does not: discovery, JWKS, `/device` (client_secret_basic), `/token`
/// (the device_code grant: authorization_pending until `/approve?user_code=..&sub=..`,
/// access_denied after `/deny`, one ID token per device code) on 127.0.0.1.
const DEVICE_IDP_PY: &str = r#"
import base64, http.server, json, secrets, sys, time, urllib.parse, jwt
from cryptography.hazmat.primitives.asymmetric import rsa
port = int(sys.argv[1]); base = "http://127.0.0.1:%d" % port
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())); jwk.update(kid="d1", use="sig", alg="RS256")
codes = {}  # device_code -> {"user_code", "sub", "denied", "used"}
BASIC = "Basic " + base64.b64encode(b"tresor:s3cret").decode()
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def reply(self, code, obj):
        b = json.dumps(obj).encode()
        self.send_response(code); self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def do_GET(self):
        u = urllib.parse.urlparse(self.path); q = dict(urllib.parse.parse_qsl(u.query))
        if u.path == "/.well-known/openid-configuration":
            return self.reply(200, {"issuer": base, "jwks_uri": base + "/jwks", "token_endpoint": base + "/token",
                "device_authorization_endpoint": base + "/device", "authorization_endpoint": base + "/authorize",
                "token_endpoint_auth_methods_supported": ["client_secret_basic"]})
        if u.path == "/jwks": return self.reply(200, {"keys": [jwk]})
        for d in codes.values():
            if d["user_code"] == q.get("user_code"):
                if u.path == "/approve": d["sub"] = q.get("sub"); return self.reply(200, {"approved": True})
                if u.path == "/deny": d["denied"] = True; return self.reply(200, {"denied": True})
        self.reply(404, {"error": "not_found"})
    def do_POST(self):
        form = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers.get("content-length", 0))).decode()))
        if self.headers.get("authorization") != BASIC: return self.reply(401, {"error": "invalid_client"})
        if self.path == "/device":
            dc = secrets.token_urlsafe(24); uc = secrets.token_hex(4).upper()
            codes[dc] = {"user_code": uc, "sub": None, "denied": False, "used": False, "scope": form.get("scope")}
            return self.reply(200, {"device_code": dc, "user_code": uc, "verification_uri": base + "/activate",
                "verification_uri_complete": base + "/activate?user_code=" + uc, "expires_in": 120, "interval": 1})
        if self.path == "/token" and form.get("grant_type") == "urn:ietf:params:oauth:grant-type:device_code":
            d = codes.get(form.get("device_code"))
            if d is None or d["used"]: return self.reply(400, {"error": "invalid_grant"})
            if d["denied"]: return self.reply(400, {"error": "access_denied"})
            if d["sub"] is None: return self.reply(400, {"error": "authorization_pending"})
            d["used"] = True; now = int(time.time())
            claims = {"iss": base, "aud": "tresor", "sub": d["sub"], "iat": now, "exp": now + 300, "groups": ["eng"]}
            tok = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "d1"})
            return self.reply(200, {"access_token": "at", "token_type": "Bearer", "id_token": tok})
        self.reply(400, {"error": "unsupported_grant_type"})
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

/// Beyond Vault (issue 14): `tresor login -method=oidc -mode=device` on a host without a
/// browser, against a provider offering the device grant; and the API's refusals.
#[test]
fn oidc_device_login_for_headless_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    policies(&s);
    let port = free_port();
    let _idp = spawn(Command::new("python3").args(["-c", DEVICE_IDP_PY, &port.to_string()]));
    let idp = format!("http://127.0.0.1:{port}");
    wait_http(&format!("{idp}/.well-known/openid-configuration"), None);
    s.bao_as("root", &["auth", "enable", "oidc"])
        .expect(0, "auth enable oidc");
    ok(
        &s,
        "PUT",
        "auth/oidc/config",
        json!({"oidc_discovery_url": idp, "oidc_client_id": "tresor", "oidc_client_secret": "s3cret", "default_role": "web"}),
    );
    ok(
        &s,
        "PUT",
        "auth/oidc/role/web",
        json!({"user_claim": "sub", "groups_claim": "groups",
               "allowed_redirect_uris": ["http://localhost:8250/oidc/callback"], "token_policies": ["default"]}),
    );
    external_group(&s, "engineering", "dev", "eng", "oidc");
    let api = |path: &str, body: Value| {
        s.api(
            "PUT",
            &format!("auth/oidc/oidc/{path}"),
            Some(&body.to_string()),
            None,
        )
    };
    let approve = |what: &str, user_code: &str| {
        run(Command::new("curl").args([
            "-sf",
            "--max-time",
            "10",
            &format!("{idp}/{what}?user_code={user_code}&sub=alice"),
        ]))
        .expect(0, what);
    };

    // The API: pending until approved, then one login per state.
    let (code, v) = api("device_auth", json!({}));
    assert_eq!(code, 200, "{v}");
    let d = &v["data"];
    assert!(
        d.get("device_code").is_none(),
        "the device code stays on the server: {v}"
    );
    assert_eq!(d["verification_uri"], format!("{idp}/activate"), "{v}");
    let (state, user_code) = (
        d["state"].as_str().unwrap(),
        d["user_code"].as_str().unwrap(),
    );
    let (code, v) = api("device_poll", json!({"state": state}));
    assert_eq!(code, 400, "{v}");
    assert!(errors(&v)[0].starts_with("authorization_pending"), "{v}");
    // Polled again at once: faster than the provider's interval, not passed on.
    let (code, v) = api("device_poll", json!({"state": state}));
    assert_eq!(code, 400, "{v}");
    assert!(errors(&v)[0].starts_with("slow_down"), "{v}");
    approve("approve", user_code);
    std::thread::sleep(Duration::from_millis(1100));
    let (code, v) = api("device_poll", json!({"state": state}));
    assert_eq!(code, 200, "{v}");
    let token = v["auth"]["client_token"].as_str().unwrap().to_owned();
    assert!(
        can_read(&s, &token, "secret/app"),
        "the eng group's policy: {v}"
    );
    let (code, v) = api("device_poll", json!({"state": state}));
    assert_eq!(code, 400, "a state logs in once: {v}");
    assert!(errors(&v)[0].contains("Expired or missing"), "{v}");
    // Eight polls racing one approved state: exactly one login.
    let (_, v) = api("device_auth", json!({}));
    let (state, user_code) = (
        v["data"]["state"].as_str().unwrap().to_owned(),
        v["data"]["user_code"].as_str().unwrap().to_owned(),
    );
    approve("approve", &user_code);
    let codes: Vec<u16> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..8)
            .map(|_| sc.spawn(|| api("device_poll", json!({"state": state})).0))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
    // A refused login ends its state; an unknown state and a jwt role are refused.
    let (_, v) = api("device_auth", json!({"role": "web"}));
    let (state, user_code) = (
        v["data"]["state"].as_str().unwrap().to_owned(),
        v["data"]["user_code"].as_str().unwrap().to_owned(),
    );
    approve("deny", &user_code);
    let (code, v) = api("device_poll", json!({"state": state}));
    assert_eq!(code, 400, "{v}");
    assert!(errors(&v)[0].starts_with("access_denied"), "{v}");
    let (code, v) = api("device_poll", json!({"state": state}));
    assert!(
        code == 400 && errors(&v)[0].contains("Expired or missing"),
        "{v}"
    );
    let (code, v) = api("device_poll", json!({"state": "made-up"}));
    assert!(
        code == 400 && errors(&v)[0].contains("Expired or missing"),
        "{v}"
    );
    ok(
        &s,
        "PUT",
        "auth/oidc/role/machine",
        json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": ["tresor"]}),
    );
    let (code, v) = api("device_auth", json!({"role": "machine"}));
    assert!(
        code == 400 && errors(&v)[0].contains("not an OIDC role"),
        "{v}"
    );

    // The CLI: prints the URL and code, polls, and stores the token once approved.
    let login = CliLogin::start(
        &s,
        dir.path(),
        &[
            "login",
            "-method=oidc",
            "-mode=device",
            "-format=json",
            "role=web",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let user_code = loop {
        let text = std::fs::read_to_string(&login.err).unwrap_or_default();
        if let Some(c) = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("and enter the code: "))
        {
            assert!(text.contains(&format!("{idp}/activate")), "{text}");
            break c.trim().to_owned();
        }
        assert!(Instant::now() < deadline, "no code printed: {text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_millis(1500));
    approve("approve", &user_code);
    let token = login.finish();
    assert!(can_read(&s, &token, "secret/app"));
    // A bad mode is a usage error.
    let o = run(clean_command(env!("CARGO_BIN_EXE_tresor"))
        .args(["login", "-method=oidc", "-mode=sideways"])
        .env("VAULT_ADDR", &s.addr)
        .env("HOME", &s.home));
    assert_ne!(o.code, 0, "{o}");
    assert!(o.stderr.contains("use browser or device"), "{o}");
    // The client secret never reaches the server's log.
    assert!(!s.log().contains("s3cret"));
}

#[test]
fn tresor_login_method_oidc_runs_the_browser_flow() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    policies(&s);
    let port = free_port();
    let _idp = spawn(clean_command("oidc-provider-mock").args(["--port", &port.to_string()]));
    let idp = format!("http://127.0.0.1:{port}");
    wait_http(&format!("{idp}/.well-known/openid-configuration"), None);
    s.bao_as("root", &["auth", "enable", "oidc"])
        .expect(0, "auth enable oidc");
    ok(
        &s,
        "PUT",
        "auth/oidc/config",
        json!({"oidc_discovery_url": idp, "oidc_client_id": "tresor", "oidc_client_secret": "s3cret", "default_role": "web"}),
    );
    let cb = free_port();
    ok(
        &s,
        "PUT",
        "auth/oidc/role/web",
        json!({"user_claim": "sub", "allowed_redirect_uris": [format!("http://localhost:{cb}/oidc/callback")],
               "token_policies": ["dev"]}),
    );
    // `tresor login -method=oidc` waits for the browser; the test plays the browser.
    let login = CliLogin::start(
        &s,
        dir.path(),
        &[
            "login",
            "-method=oidc",
            "-format=json",
            &format!("port={cb}"),
            "role=web",
            "skip_browser=true",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let url = loop {
        let text = std::fs::read_to_string(&login.err).unwrap_or_default();
        if let Some(u) = text
            .split_whitespace()
            .find(|w| w.starts_with(&idp))
            .map(str::to_owned)
        {
            break u;
        }
        assert!(Instant::now() < deadline, "no URL printed: {text}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let location = run(Command::new("curl").args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{redirect_url}",
        "--max-time",
        "20",
        "-d",
        "sub=alice",
        &url,
    ]))
    .expect(0, "post the user")
    .stdout;
    assert!(
        location.starts_with(&format!("http://localhost:{cb}/oidc/callback")),
        "{location}"
    );
    run(Command::new("curl").args(["-s", "--max-time", "20", location.trim()]))
        .expect(0, "the browser follows the redirect to the CLI");
    let token = login.finish();
    assert!(can_read(&s, &token, "secret/app"));
}
