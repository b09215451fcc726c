//! Issue 12: a bad-input battery against a running `tresor server -dev`. For every class of bad
//! request (malformed JSON, huge and deeply nested JSON, wrong content types, giant headers,
//! path tricks, bad tokens, bad durations, junk PEM/CSR/DER sent to PKI), several requests are
//! sent over a raw TCP connection (so any byte can be sent, and a dropped connection is seen as
//! one), and each must get:
//!
//! - a 4xx, never a 5xx, never a dropped connection (hyper's own 414/431 with an empty body
//!   or a closed connection are accepted only where hyper answers before Tresor sees the
//!   request);
//! - Vault's error shape, `{"errors":[...]}`, with a message naming what is wrong;
//! - a server that still answers `GET /v1/sys/health` with 200 afterwards;
//!
//! and at the end of every class, the KV v2 secret, policy, PKI role and PKI issuers written
//! before the battery must read back unchanged.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use common::{Server, free_port};
use serde_json::{Value, json};

/// What came back on one connection. `status` 0 means the connection closed with no answer.
struct Resp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Resp {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{}: body is not JSON ({e}): {}", self.status, self.text()))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

impl std::fmt::Display for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.text();
        let cut = t.char_indices().nth(400).map_or(t.len(), |(i, _)| i);
        write!(f, "status {}: {}", self.status, &t[..cut])
    }
}

/// Decodes a chunked body (what hyper sends when it does not know the length up front).
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&b[..i])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || b.len() < i + 2 + size {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + size]);
        b = &b[(i + 4 + size).min(b.len())..];
    }
    out
}

/// One HTTP/1.1 request, every byte as given, on its own connection (`Connection: close`).
/// The request is written on a thread while the answer is read, so a server that answers
/// early (413, 431) and closes is seen, not deadlocked on.
fn send(port: u16, method: &str, target: &[u8], headers: &[(&str, &[u8])], body: &[u8]) -> Resp {
    let mut req = Vec::with_capacity(body.len() + 512);
    req.extend_from_slice(method.as_bytes());
    req.push(b' ');
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.extend_from_slice(k.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(v);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    req.extend_from_slice(body);

    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    let mut w = s.try_clone().expect("clone stream");
    let writer = std::thread::spawn(move || {
        // The server may answer and close before reading everything: not an error here.
        let _ = w.write_all(&req);
        let _ = w.flush();
    });
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // A reset after (or instead of) the answer: keep what arrived.
            Err(_) => break,
        }
    }
    let _ = s.shutdown(Shutdown::Both);
    let _ = writer.join();

    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Resp {
            status: 0,
            head: String::from_utf8_lossy(&buf).into_owned(),
            body: Vec::new(),
        };
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let raw = &buf[end + 4..];
    let mut r = Resp {
        status,
        head,
        body: Vec::new(),
    };
    r.body = if r
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        dechunk(raw)
    } else {
        raw.to_vec()
    };
    r
}

/// The server under test and the record of what must not change.
struct Battery {
    s: Server,
    baseline: Value,
}

const ROOT: &[u8] = b"root";

impl Battery {
    fn port(&self) -> u16 {
        self.s.port
    }

    /// A request as root to `/v1/{path}` with a JSON content type.
    fn root(&self, method: &str, path: impl AsRef<[u8]>, body: &[u8]) -> Resp {
        self.raw(
            method,
            path.as_ref(),
            &[
                ("X-Vault-Token", ROOT),
                ("Content-Type", b"application/json"),
            ],
            body,
        )
    }

    /// A request to `/v1/{path}` with exactly these headers.
    fn raw(&self, method: &str, path: &[u8], headers: &[(&str, &[u8])], body: &[u8]) -> Resp {
        let mut target = b"/v1/".to_vec();
        target.extend_from_slice(path);
        send(self.port(), method, &target, headers, body)
    }

    /// A request that must succeed, as root; returns the JSON answer (`null` when empty).
    fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let r = self.root(method, path, body.to_string().as_bytes());
        assert!(
            (200..300).contains(&r.status),
            "{method} {path}: expected success, got {r}"
        );
        if r.body.is_empty() {
            Value::Null
        } else {
            r.json()
        }
    }

    /// The server still answers its health check with 200.
    #[track_caller]
    fn healthy(&self, after: &str) {
        let r = send(self.port(), "GET", b"/v1/sys/health", &[], b"");
        assert_eq!(
            r.status,
            200,
            "after {after}: the server no longer answers sys/health ({r})\n--- server log\n{}",
            self.s.log()
        );
    }

    /// `r` is a 4xx in `want` (empty: any 4xx) in Vault's error shape, with an error
    /// containing `needle` (case-insensitively), and the server is still healthy.
    #[track_caller]
    fn refused(&self, what: &str, r: Resp, want: &[u16], needle: &str) {
        assert_ne!(
            r.status,
            0,
            "{what}: connection dropped with no answer\n--- server log\n{}",
            self.s.log()
        );
        assert!(
            (400..500).contains(&r.status),
            "{what}: expected a 4xx, got {r}"
        );
        if !want.is_empty() {
            assert!(
                want.contains(&r.status),
                "{what}: expected {want:?}, got {r}"
            );
        }
        let v = r.json();
        let errs: Vec<String> = v
            .get("errors")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{what}: no \"errors\" list in {v}"))
            .iter()
            .map(|e| {
                e.as_str()
                    .unwrap_or_else(|| panic!("{what}: non-string error in {v}"))
                    .to_owned()
            })
            .collect();
        let n = needle.to_lowercase();
        assert!(
            errs.iter().any(|e| e.to_lowercase().contains(&n)),
            "{what}: expected an error mentioning {needle:?}, got {errs:?}"
        );
        self.healthy(what);
    }

    /// `r` was refused by the HTTP layer before Tresor saw it: one of `want` (with an empty
    /// body or Vault's error shape), or the connection closed; the server is still healthy.
    #[track_caller]
    fn refused_by_http(&self, what: &str, r: Resp, want: &[u16]) {
        if r.status != 0 {
            assert!(
                want.contains(&r.status),
                "{what}: expected {want:?}, got {r}"
            );
            if r.status >= 400 && !r.body.is_empty() {
                assert!(r.json().get("errors").is_some(), "{what}: {r}");
            }
        }
        self.healthy(what);
    }

    /// Everything the battery must not change, read back.
    fn snapshot(&self) -> Value {
        let kv = self.ok("GET", "secret/data/app", Value::Null);
        let meta = self.ok("GET", "secret/metadata/app", Value::Null);
        let policy = self.ok("GET", "sys/policies/acl/app", Value::Null);
        let role = self.ok("GET", "pki/roles/web", Value::Null);
        let issuers = self.ok("LIST", "pki/issuers", Value::Null);
        let certs = self.ok("LIST", "pki/certs", Value::Null);
        let mut meta = meta["data"].clone();
        // Reads do not touch it, but be explicit about what is compared.
        if let Some(m) = meta.as_object_mut() {
            m.remove("updated_time");
        }
        json!({
            "kv": kv["data"],
            "kv_meta": meta,
            "policy": policy["data"]["policy"],
            "role": role["data"],
            "issuers": issuers["data"]["keys"],
            "certs": certs["data"]["keys"],
        })
    }

    #[track_caller]
    fn unchanged(&self, class: &str) {
        let now = self.snapshot();
        assert_eq!(
            now, self.baseline,
            "stored data changed during the {class} class"
        );
    }
}

const POLICY: &str = "path \"secret/data/app\" {\n  capabilities = [\"read\"]\n}\n";

fn setup() -> (tempfile::TempDir, Battery) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let s = Server::start_dev(tmp.path(), port);
    let mut b = Battery {
        s,
        baseline: Value::Null,
    };
    b.ok(
        "POST",
        "secret/data/app",
        json!({"data": {"password": "s3cret", "user": "app"}}),
    );
    b.ok("PUT", "sys/policies/acl/app", json!({"policy": POLICY}));
    b.ok("POST", "sys/mounts/pki", json!({"type": "pki"}));
    b.ok(
        "POST",
        "pki/root/generate/internal",
        json!({"common_name": "example.com", "key_type": "ec", "ttl": "87600h"}),
    );
    b.ok(
        "POST",
        "pki/roles/web",
        json!({"allowed_domains": "example.com", "allow_subdomains": true, "max_ttl": "72h", "key_type": "ec"}),
    );
    let issued = b.ok(
        "POST",
        "pki/issue/web",
        json!({"common_name": "a.example.com", "ttl": "1h"}),
    );
    assert!(issued["data"]["certificate"].is_string(), "{issued}");
    b.baseline = b.snapshot();
    assert_eq!(b.baseline["kv"]["data"]["password"], "s3cret");
    assert_eq!(b.baseline["policy"], POLICY);
    assert_eq!(b.baseline["role"]["max_ttl"], 259_200);
    (tmp, b)
}

/// The endpoints each malformed body is sent to: a KV v2 write, a policy write, a PKI role.
const TARGETS: [(&str, &str); 3] = [
    ("POST", "secret/data/app"),
    ("PUT", "sys/policies/acl/app"),
    ("POST", "pki/roles/web"),
];

fn malformed_json(b: &Battery) {
    let bodies: [(&str, &[u8], &str); 9] = [
        ("truncated", br#"{"data":{"password":"#, "JSON"),
        ("a lone brace", b"{", "JSON"),
        (
            "trailing garbage",
            br#"{"data":{"password":"x"}} garbage"#,
            "JSON",
        ),
        ("two objects", br#"{"data":{}}{"data":{}}"#, "JSON"),
        (
            "invalid UTF-8 in a string",
            b"{\"data\":{\"password\":\"\xff\xfe\"}}",
            "JSON",
        ),
        (
            "invalid UTF-8 outside strings",
            b"\xff{\"data\":{}}",
            "JSON",
        ),
        ("an array", b"[1,2]", "JSON object"),
        ("a string", br#""data""#, "JSON object"),
        ("a number", b"42", "JSON object"),
    ];
    for (method, path) in TARGETS {
        for (what, body, needle) in bodies {
            let r = b.root(method, path, body);
            b.refused(&format!("{method} {path}: {what}"), r, &[400], needle);
        }
    }
    b.unchanged("malformed JSON");
}

fn huge_json(b: &Battery) {
    // Over the default max_request_size (32 MiB): 413, whatever the endpoint.
    let big = {
        let mut v = br#"{"data":{"password":""#.to_vec();
        v.resize(v.len() + 33 * 1024 * 1024, b'a');
        v.extend_from_slice(br#""}}"#);
        v
    };
    for (method, path) in TARGETS {
        let r = b.root(method, path, &big);
        b.refused(&format!("{method} {path}: 33 MiB"), r, &[413], "too large");
    }
    drop(big);

    // A 1 MiB string value is accepted (it is under every limit) or refused cleanly; if
    // accepted, it reads back whole.
    let value = "v".repeat(1024 * 1024);
    let r = b.root(
        "POST",
        "secret/data/big",
        json!({"data": {"big": value}}).to_string().as_bytes(),
    );
    if r.status == 200 {
        let got = b.ok("GET", "secret/data/big", Value::Null);
        assert_eq!(
            got["data"]["data"]["big"].as_str().map(str::len),
            Some(value.len())
        );
        b.healthy("a 1 MiB KV value");
    } else {
        b.refused("a 1 MiB KV value", r, &[], "");
    }
    // A 1 MiB policy name or role field is no crash either.
    let r = b.root(
        "POST",
        "pki/roles/big",
        json!({"allowed_domains": value}).to_string().as_bytes(),
    );
    if r.status != 200 {
        b.refused("a 1 MiB role field", r, &[], "");
    }
    b.healthy("a 1 MiB role field");
    b.unchanged("huge JSON");
}

fn deeply_nested_json(b: &Battery) {
    let n = 10_000;
    let arrays = format!(r#"{{"data":{{"x":{}{}}}}}"#, "[".repeat(n), "]".repeat(n));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(n), "}".repeat(n));
    let unclosed = "[".repeat(10 * n);
    let mixed = format!(r#"{{"data":{}{}}}"#, r#"{"a":["#.repeat(n), "]}".repeat(n));
    for (method, path) in TARGETS {
        for (what, body) in [
            ("10,000 nested arrays", &arrays),
            ("10,000 nested objects", &objects),
            ("100,000 unclosed arrays", &unclosed),
            ("10,000 nested objects and arrays", &mixed),
        ] {
            let r = b.root(method, path, body.as_bytes());
            b.refused(&format!("{method} {path}: {what}"), r, &[400], "JSON");
        }
    }

    // Deep nesting inside the policy text, which has parsers of its own (HCL, and JSON).
    // Before issue 12's fix, the first of these overflowed a worker's stack and aborted the
    // whole server.
    let hcl = |inner: String| json!({ "policy": format!("path \"a\" {{ {inner} }}") });
    let policies = [
        (
            "HCL: 10,000 nested lists",
            hcl(format!("capabilities = {}{}", "[".repeat(n), "]".repeat(n))),
        ),
        (
            "HCL: 10,000 nested objects",
            hcl(format!("x = {}1{}", "{a=".repeat(n), "}".repeat(n))),
        ),
        (
            "HCL: 10,000 parentheses",
            hcl(format!("x = {}1{}", "(".repeat(n), ")".repeat(n))),
        ),
        (
            "HCL: 10,000 unary minus",
            hcl(format!("x = {}1", "-".repeat(n))),
        ),
        (
            "HCL: 10,000 nested templates",
            hcl(format!("x = {}{}", "\"${".repeat(n), "}\"".repeat(n))),
        ),
        (
            "HCL: 10,000 nested blocks",
            json!({"policy": format!("{}{}", "a {\n".repeat(n), "}\n".repeat(n))}),
        ),
        (
            "JSON policy text: 10,000 nested objects",
            json!({"policy": format!("{}1{}", r#"{"a":"#.repeat(n), "}".repeat(n))}),
        ),
    ];
    for path in [
        "sys/policies/acl/app",
        "sys/policy/app",
        "sys/policies/acl/deep",
    ] {
        for (what, body) in &policies {
            let r = b.root("PUT", path, body.to_string().as_bytes());
            b.refused(
                &format!("PUT {path}: {what}"),
                r,
                &[400],
                "failed to parse policy",
            );
        }
    }
    b.unchanged("deeply nested JSON");
}

fn content_types(b: &Battery) {
    // Vault parses a JSON body whatever the content type says.
    for ct in [
        &b"text/plain"[..],
        b"application/octet-stream",
        b"application/json; charset=latin1",
        b";;;=",
    ] {
        let r = b.raw(
            "POST",
            b"secret/data/ct",
            &[("X-Vault-Token", ROOT), ("Content-Type", ct)],
            br#"{"data":{"a":"b"}}"#,
        );
        assert_eq!(r.status, 200, "{}: {r}", String::from_utf8_lossy(ct));
        b.healthy("a JSON body under another content type");
    }
    let got = b.ok("GET", "secret/data/ct", Value::Null);
    assert_eq!(got["data"]["data"], json!({"a": "b"}), "{got}");

    // A form body is request data, as in Vault: a field of the wrong shape is a 400 naming it.
    let r = b.raw(
        "POST",
        b"secret/data/app",
        &[
            ("X-Vault-Token", ROOT),
            ("Content-Type", b"application/x-www-form-urlencoded"),
        ],
        b"data=x",
    );
    b.refused("a form body with a string for data", r, &[400], "data");

    // Bodies that are not JSON, under the content type they really are: refused as JSON.
    for (ct, body) in [
        (
            &b"application/xml"[..],
            &b"<data><password>x</password></data>"[..],
        ),
        (
            b"multipart/form-data; boundary=x",
            b"--x\r\n\r\nx\r\n--x--\r\n",
        ),
    ] {
        for (method, path) in TARGETS {
            let r = b.raw(
                method,
                path.as_bytes(),
                &[("X-Vault-Token", ROOT), ("Content-Type", ct)],
                body,
            );
            let what = format!("{method} {path} as {}", String::from_utf8_lossy(ct));
            b.refused(&what, r, &[400], "JSON");
        }
    }

    // PATCH requires application/merge-patch+json: 415 naming it.
    for ct in [
        Some(&b"application/json"[..]),
        Some(b"text/plain"),
        Some(b"application/merge-patch"),
        None,
    ] {
        let mut headers: Vec<(&str, &[u8])> = vec![("X-Vault-Token", ROOT)];
        if let Some(ct) = ct {
            headers.push(("Content-Type", ct));
        }
        let r = b.raw(
            "PATCH",
            b"secret/data/app",
            &headers,
            br#"{"data":{"password":"patched"}}"#,
        );
        b.refused(&format!("PATCH as {ct:?}"), r, &[415], "merge-patch+json");
    }
    // The right content type with a bad body: 400.
    for body in [&b"[1]"[..], br#"{"data":"#, b"\xff"] {
        let r = b.raw(
            "PATCH",
            b"secret/data/app",
            &[
                ("X-Vault-Token", ROOT),
                ("Content-Type", b"application/merge-patch+json"),
            ],
            body,
        );
        b.refused("PATCH merge-patch with a bad body", r, &[400], "JSON");
    }
    b.unchanged("wrong content types");
}

fn giant_headers(b: &Battery) {
    let k100 = vec![b'a'; 100 * 1024];
    let m1 = vec![b'a'; 1024 * 1024];
    // A 100 KB header is under hyper's limit: the request is answered as usual (or refused
    // with 431 / a closed connection, which a smaller limit would give).
    let r = b.raw("GET", b"sys/health", &[("X-Big", &k100)], b"");
    b.refused_by_http("100 KB header on sys/health", r, &[200, 431]);
    let r = b.raw(
        "POST",
        b"secret/data/hdr",
        &[("X-Vault-Token", ROOT), ("X-Big", &k100)],
        br#"{"data":{"password":"big header"}}"#,
    );
    b.refused_by_http("100 KB header on a write", r, &[200, 431]);
    // A 100 KB token: 403 (or refused by hyper).
    let r = b.raw("GET", b"secret/data/app", &[("X-Vault-Token", &k100)], b"");
    if r.status == 403 {
        b.refused("100 KB token", r, &[403], "permission denied");
    } else {
        b.refused_by_http("100 KB token", r, &[431]);
    }
    // Over hyper's limit: 431 or a closed connection.
    let r = b.raw("GET", b"sys/health", &[("X-Big", &m1)], b"");
    b.refused_by_http("1 MB header", r, &[431]);
    let r = b.raw("GET", b"secret/data/app", &[("X-Vault-Token", &m1)], b"");
    b.refused_by_http("1 MB token", r, &[431]);
    let many: Vec<(String, Vec<u8>)> = (0..2000)
        .map(|i| (format!("X-H{i}"), b"v".to_vec()))
        .collect();
    let many: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    let r = b.raw("GET", b"sys/health", &many, b"");
    b.refused_by_http("2,000 headers", r, &[431]);
    // A header line with no colon, and one with a NUL byte: hyper's 400 or a closed connection.
    let r = send(
        b.port(),
        "GET",
        b"/v1/sys/health",
        &[("X-Bad\r\nno colon here", b"")],
        b"",
    );
    b.refused_by_http("a header line without a colon", r, &[400]);
    let r = b.raw("GET", b"sys/health", &[("X-Nul", b"a\x00b")], b"");
    b.refused_by_http("a NUL byte in a header", r, &[200, 400]);
    b.unchanged("giant headers");
}

fn path_tricks(b: &Battery) {
    // Other spellings of a path are never served: Vault's 307 to the clean path, which the
    // client must ask for itself (and the ACL then checks).
    let spellings: [(&[u8], &str); 9] = [
        (b"secret/data/../data/app", "/v1/secret/data/app"),
        (
            b"secret/data/%2e%2e/%2e%2e/sys/policies/acl/app",
            "/v1/sys/policies/acl/app",
        ),
        (b"secret/data/%2E%2E/app", "/v1/secret/app"),
        (b"sys/policies/acl/..%2fapp", "/v1/sys/policies/app"),
        (b"sys/policies/acl/%2e%2e%2Fapp", "/v1/sys/policies/app"),
        (b"pki/roles/./web", "/v1/pki/roles/web"),
        (b"sys/../sys/policies/acl/app", "/v1/sys/policies/acl/app"),
        (b"secret/data//app", "/v1/secret/data/app"),
        (
            b"secret//data/app?version=1",
            "/v1/secret/data/app?version=1",
        ),
    ];
    for (p, location) in spellings {
        for (method, body) in [("GET", &b""[..]), ("POST", br#"{"data":{"password":"x"}}"#)] {
            let r = b.root(method, p, body);
            let what = format!("{method} {}", String::from_utf8_lossy(p));
            assert_eq!(r.status, 307, "{what}: {r}");
            let want = format!("location: {location}\r\n");
            assert!(
                r.head
                    .to_ascii_lowercase()
                    .contains(&want.to_ascii_lowercase()),
                "{what}: expected {want:?} in\n{}",
                r.head
            );
        }
    }
    b.unchanged("other spellings of a path");
    for (p, needle) in [
        (&b"secret/data/a%00b"[..], "control characters"),
        (b"pki/roles/%00", "control characters"),
        (b"secret/data/%0a", "control characters"),
        (b"secret/data/%FF", "UTF-8"),
        (b"pki/sign/%ff%fe", "UTF-8"),
        (b"sys/policies/acl/%C0%AE%C0%AE", "UTF-8"),
    ] {
        for (method, body) in [("GET", &b""[..]), ("POST", br#"{"data":{"password":"x"}}"#)] {
            let r = b.root(method, p, body);
            let what = format!("{method} {}", String::from_utf8_lossy(p));
            b.refused(&what, r, &[400], needle);
        }
    }
    // Bad percent-encoding is taken literally (a name that does not exist), never a 5xx.
    for p in [&b"secret/data/%zz"[..], b"secret/data/%", b"secret/data/%2"] {
        let r = b.root("GET", p, b"");
        assert!(
            (400..500).contains(&r.status) && r.json()["errors"].is_array(),
            "GET {}: {r}",
            String::from_utf8_lossy(p)
        );
        b.healthy("bad percent-encoding");
    }
    // Raw bytes hyper refuses in the request line: its 400, or a closed connection.
    for p in [
        &b"secret/data/\xff"[..],
        b"secret/data/a\x00b",
        b"secret/data/a b",
    ] {
        let r = b.root("GET", p, b"");
        b.refused_by_http(&format!("raw bytes in the path {p:?}"), r, &[400]);
    }
    // 64 KB paths: hyper's 414 (or Vault's shape if one gets through).
    let long = vec![b'a'; 64 * 1024];
    let segments = b"a/".repeat(32 * 1024);
    for p in [&long, &segments] {
        let mut path = b"secret/data/".to_vec();
        path.extend_from_slice(p);
        for (method, body) in [("GET", &b""[..]), ("POST", br#"{"data":{"password":"x"}}"#)] {
            let r = b.root(method, &path, body);
            b.refused_by_http(&format!("{method} a 64 KB path"), r, &[404, 414]);
        }
    }
    // A bad query string value names the field.
    let r = b.root("GET", b"secret/data/app?version=%FF", b"");
    b.refused("version=%FF", r, &[400], "version");
    let r = b.root("GET", b"secret/data/app?version=-1", b"");
    assert!(r.status < 500 && r.status != 0, "version=-1: {r}");
    b.healthy("version=-1");
    b.unchanged("path tricks");
}

fn bad_tokens(b: &Battery) {
    let long = vec![b'x'; 10 * 1024];
    let tokens: [(&str, &[u8]); 9] = [
        ("an empty token", b""),
        ("a 10 KB token", &long),
        ("a non-ASCII token", "tökén".as_bytes()),
        ("a token of invalid UTF-8", b"\xff\xfe"),
        ("hvs. + garbage", b"hvs.!!@@not-a-token"),
        ("hvs. alone", b"hvs."),
        ("hvb. + garbage", b"hvb.AAAA-garbage-AAAA"),
        ("hvr. + garbage", b"hvr.garbage"),
        ("s. + garbage", b"s.garbage"),
    ];
    for (what, token) in tokens {
        for (method, path, body) in [
            ("GET", "secret/data/app", &b""[..]),
            (
                "POST",
                "secret/data/app",
                br#"{"data":{"password":"stolen"}}"#,
            ),
            (
                "PUT",
                "sys/policies/acl/app",
                br#"{"policy":"path \"*\" { capabilities = [\"sudo\"] }"}"#,
            ),
            ("POST", "pki/roles/web", br#"{"allow_any_name":true}"#),
        ] {
            let r = b.raw(
                method,
                path.as_bytes(),
                &[
                    ("X-Vault-Token", token),
                    ("Content-Type", b"application/json"),
                ],
                body,
            );
            b.refused(
                &format!("{method} {path} with {what}"),
                r,
                &[403],
                "permission denied",
            );
        }
    }
    for (what, auth) in [
        ("Bearer hvb. + garbage", &b"Bearer hvb.junk"[..]),
        ("Bearer hvs. + garbage", b"Bearer hvs.junk"),
        ("Bearer alone", b"Bearer "),
        ("an Authorization with no scheme", b"garbage"),
        ("Bearer + invalid UTF-8", b"Bearer \xff"),
    ] {
        let r = b.raw(
            "POST",
            b"secret/data/app",
            &[
                ("Authorization", auth),
                ("Content-Type", b"application/json"),
            ],
            br#"{"data":{"password":"stolen"}}"#,
        );
        b.refused(
            &format!("a write with {what}"),
            r,
            &[403],
            "permission denied",
        );
    }
    b.unchanged("bad tokens");
}

fn bad_durations(b: &Battery) {
    let bad: [(&str, &str, &str); 9] = [
        ("negative", r#""-5s""#, "negative"),
        ("negative, no unit", r#""-1""#, "negative"),
        ("a negative number", "-5", "negative"),
        ("overflowing", r#""99999999999999999999h""#, "out of range"),
        (
            "overflowing seconds",
            r#""9223372036854775807s""#,
            "out of range",
        ),
        ("a huge number", "1e300", "out of range"),
        ("unitless garbage", r#""garbage""#, "invalid duration"),
        ("an unknown unit", r#""5 parsecs""#, "unknown unit"),
        ("a boolean", "true", "invalid duration"),
    ];
    for (what, value, needle) in bad {
        for (method, path, field) in [
            ("POST", "pki/roles/web", "ttl"),
            ("POST", "pki/roles/web", "max_ttl"),
            ("POST", "secret/metadata/app", "delete_version_after"),
            ("POST", "auth/token/create", "ttl"),
            ("POST", "auth/token/create", "explicit_max_ttl"),
            ("POST", "pki/issue/web", "ttl"),
        ] {
            let body = if path == "pki/issue/web" {
                format!(r#"{{"common_name":"b.example.com","{field}":{value}}}"#)
            } else {
                format!(r#"{{"{field}":{value}}}"#)
            };
            let r = b.root(method, path, body.as_bytes());
            let w = format!("{method} {path} {field}: {what}");
            b.refused(&w, r, &[400], field);
            // And the message says what is wrong with it.
            let r = b.root(method, path, body.as_bytes());
            b.refused(&w, r, &[400], needle);
        }
        let r = b.root(
            "POST",
            "sys/mounts/secret/tune",
            format!(r#"{{"default_lease_ttl":{value}}}"#).as_bytes(),
        );
        b.refused(
            &format!("tune default_lease_ttl: {what}"),
            r,
            &[400],
            "default_lease_ttl",
        );
    }
    // An empty duration is fine: it means "unset".
    let r = b.root(
        "POST",
        "pki/roles/scratch",
        br#"{"allowed_domains":"example.com","ttl":""}"#,
    );
    assert_eq!(r.status, 200, "ttl \"\": {r}");
    assert_eq!(r.json()["data"]["ttl"], 0, "{r}");

    // X-Vault-Wrap-TTL, on a read and on writes (which must not happen).
    for (what, ttl, needle) in [
        ("negative", &b"-5s"[..], "negative"),
        ("negative, no unit", b"-1", "negative"),
        ("overflowing", b"99999999999999999999h", "out of range"),
        ("a huge number", b"1e300", "X-Vault-Wrap-TTL"),
        ("unitless garbage", b"garbage", "X-Vault-Wrap-TTL"),
        ("an unknown unit", b"5 parsecs", "unknown unit"),
        // Not visible ASCII: once silently ignored, answering unwrapped (issue 12).
        ("non-ASCII", "5ü".as_bytes(), "X-Vault-Wrap-TTL"),
        ("invalid UTF-8", b"\xff", "X-Vault-Wrap-TTL"),
    ] {
        for (method, path, body) in [
            ("GET", "secret/data/app", &b""[..]),
            (
                "POST",
                "secret/data/app",
                br#"{"data":{"password":"wrapped"}}"#,
            ),
            (
                "PUT",
                "sys/policies/acl/app",
                br#"{"policy":"path \"*\" { capabilities = [\"read\"] }"}"#,
            ),
            ("POST", "pki/roles/web", br#"{"allow_any_name":true}"#),
        ] {
            let r = b.raw(
                method,
                path.as_bytes(),
                &[
                    ("X-Vault-Token", ROOT),
                    ("Content-Type", b"application/json"),
                    ("X-Vault-Wrap-TTL", ttl),
                ],
                body,
            );
            b.refused(
                &format!("{method} {path} wrap TTL {what}"),
                r,
                &[400],
                needle,
            );
        }
    }
    // An empty wrap TTL means "do not wrap".
    let r = b.raw(
        "GET",
        b"secret/data/app",
        &[("X-Vault-Token", ROOT), ("X-Vault-Wrap-TTL", b"")],
        b"",
    );
    assert_eq!(r.status, 200, "empty wrap TTL: {r}");
    let v = r.json();
    assert!(v["wrap_info"].is_null(), "{v}");
    assert_eq!(v["data"]["data"]["password"], "s3cret", "{v}");
    b.unchanged("bad durations");
}

fn pki_junk(b: &Battery) {
    const JUNK_B64: &str = "-----BEGIN CERTIFICATE REQUEST-----\nnot base64 at all!!\n-----END CERTIFICATE REQUEST-----\n";
    // Valid base64 of a truncated DER SEQUENCE.
    const JUNK_DER: &str = "-----BEGIN CERTIFICATE REQUEST-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END CERTIFICATE REQUEST-----\n";
    const JUNK_CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END CERTIFICATE-----\n";
    const JUNK_ZERO_CERT: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    const JUNK_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";

    for csr in [
        json!(JUNK_B64),
        json!(JUNK_DER),
        json!("garbage"),
        json!(12),
        json!(["a"]),
    ] {
        for path in [
            "pki/sign/web",
            "pki/sign-verbatim/web",
            "pki/root/sign-intermediate",
        ] {
            let body = json!({"csr": csr, "common_name": "a.example.com"});
            let r = b.root("POST", path, body.to_string().as_bytes());
            b.refused(&format!("{path} with csr {csr}"), r, &[400], "csr");
        }
    }
    for (what, bundle, needle) in [
        ("not PEM", "junk", "pem_bundle"),
        ("a CSR with bad base64", JUNK_B64, "pem"),
        ("a truncated certificate", JUNK_CERT, "certificate"),
        ("a zero certificate", JUNK_ZERO_CERT, "certificate"),
        ("a junk private key", JUNK_KEY, "private key"),
    ] {
        for path in [
            "pki/config/ca",
            "pki/issuers/import/bundle",
            "pki/issuers/import/cert",
        ] {
            let body = json!({ "pem_bundle": bundle });
            let r = b.root("POST", path, body.to_string().as_bytes());
            b.refused(&format!("{path} with {what}"), r, &[400], needle);
        }
    }
    for (what, body, needle) in [
        ("junk", json!({"certificate": "junk"}), "certificate"),
        (
            "a truncated certificate",
            json!({"certificate": JUNK_CERT}),
            "certificate",
        ),
        (
            "a zero certificate",
            json!({"certificate": JUNK_ZERO_CERT}),
            "certificate",
        ),
        (
            "a bad serial",
            json!({"serial_number": "zz:zz"}),
            "serial_number",
        ),
        ("nothing", json!({}), "serial_number"),
    ] {
        let r = b.root("POST", "pki/revoke", body.to_string().as_bytes());
        b.refused(&format!("pki/revoke with {what}"), r, &[400], needle);
    }
    // 10,000 nested DER SEQUENCEs where a CSR, a certificate or a key is expected.
    let deep_der = {
        let mut x = vec![0x05, 0x00];
        for _ in 0..10_000 {
            let mut lenb = x.len().to_be_bytes().to_vec();
            while lenb.first() == Some(&0) {
                lenb.remove(0);
            }
            let mut next = vec![0x30];
            if x.len() < 128 {
                next.push(x.len() as u8);
            } else {
                next.push(0x80 | lenb.len() as u8);
                next.extend_from_slice(&lenb);
            }
            next.extend_from_slice(&x);
            x = next;
        }
        x
    };
    let deep_pem = |label: &str| {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&deep_der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    };
    for (path, body, needle) in [
        (
            "pki/sign/web",
            json!({"csr": deep_pem("CERTIFICATE REQUEST"), "common_name": "a.example.com"}),
            "csr",
        ),
        (
            "pki/config/ca",
            json!({"pem_bundle": deep_pem("CERTIFICATE")}),
            "certificate",
        ),
        (
            "pki/issuers/import/bundle",
            json!({"pem_bundle": deep_pem("PRIVATE KEY")}),
            "private key",
        ),
        (
            "pki/revoke",
            json!({"certificate": deep_pem("CERTIFICATE")}),
            "certificate",
        ),
    ] {
        let r = b.root("POST", path, body.to_string().as_bytes());
        b.refused(&format!("{path} with deeply nested DER"), r, &[400], needle);
    }

    let r = b.root(
        "POST",
        "pki/intermediate/set-signed",
        json!({"certificate": "junk"}).to_string().as_bytes(),
    );
    b.refused(
        "pki/intermediate/set-signed with junk",
        r,
        &[400],
        "certificate",
    );

    // OCSP: junk DER gets an OCSP malformedRequest answer (OCSPResponse with status 1),
    // never a 5xx.
    const MALFORMED: &[u8] = &[0x30, 0x03, 0x0a, 0x01, 0x01];
    let deep_ber = [b"\x30\x80".repeat(10_000), b"\x00\x00".repeat(10_000)].concat();
    for (what, der) in [
        ("text", &b"junk"[..]),
        ("an empty body", b""),
        ("a truncated SEQUENCE", &[0x30, 0x82, 0xff, 0xff, 0x30]),
        (
            "a SEQUENCE of the wrong shape",
            &[0x30, 0x03, 0x02, 0x01, 0x00],
        ),
        ("random bytes", &[0xde, 0xad, 0xbe, 0xef, 0x00, 0xff]),
        ("10,000 nested SEQUENCEs", &deep_der),
        ("10,000 nested indefinite-length SEQUENCEs", &deep_ber),
    ] {
        let r = b.raw(
            "POST",
            b"pki/ocsp",
            &[("Content-Type", b"application/ocsp-request")],
            der,
        );
        assert!(
            r.status == 200 || r.status == 400,
            "OCSP POST {what}: expected an OCSP answer, got {r}"
        );
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/ocsp-response"),
            "OCSP POST {what}: {}",
            r.head
        );
        assert_eq!(r.body, MALFORMED, "OCSP POST {what}: not malformedRequest");
        b.healthy(&format!("OCSP POST {what}"));
    }
    for junk in ["junk!!", "AAAA", "MAMCAQA="] {
        let r = b.raw("GET", format!("pki/ocsp/{junk}").as_bytes(), &[], b"");
        assert!(r.status == 200 || r.status == 400, "OCSP GET {junk}: {r}");
        assert_eq!(r.body, MALFORMED, "OCSP GET {junk}: not malformedRequest");
        b.healthy("OCSP GET junk");
    }
    b.unchanged("PKI junk");
}

#[test]
fn bad_input_battery_gets_4xx_in_vault_shape_and_changes_nothing() {
    let started = std::time::Instant::now();
    let (_tmp, b) = setup();
    malformed_json(&b);
    huge_json(&b);
    deeply_nested_json(&b);
    content_types(&b);
    giant_headers(&b);
    path_tricks(&b);
    bad_tokens(&b);
    bad_durations(&b);
    pki_junk(&b);
    b.healthy("the whole battery");
    b.unchanged("the whole battery");
    // The server neither crashed nor logged a panic.
    let log = b.s.log();
    assert!(
        !log.contains("panicked") && !log.contains("overflowed its stack"),
        "the server log shows a panic:\n{log}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the battery took {:?}",
        started.elapsed()
    );
}
