//! Issue 15 end to end: the TOTP secrets engine on a real `tresor server -dev`, driven with
//! the `bao` CLI and curl, with `oathtool` as the authenticator app: a generated key's code
//! is accepted once and refused the second time; an `otpauth://` URL made elsewhere imports
//! and validates; the barcode is a PNG a real decoder (Python's zlib) reads; bad input is a
//! clear 4xx and stores nothing.

mod common;

use std::process::Command;

use common::{Server, errors, free_port, run};

fn oathtool(args: &[&str]) -> String {
    let o = run(Command::new("oathtool").args(args));
    assert_eq!(
        o.code, 0,
        "oathtool {args:?} (install it: apt-get install oathtool; .ci/run does)\n{o}"
    );
    o.stdout.trim().to_owned()
}

fn secret_of(url: &str) -> String {
    url.split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .expect("secret in url")
        .to_owned()
}

#[test]
fn oathtool_codes_validate_once_and_urls_import() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    s.bao_as("root", &["secrets", "enable", "totp"])
        .expect(0, "secrets enable totp");

    let v = s
        .bao_as(
            "root",
            &[
                "write",
                "-format=json",
                "totp/keys/app",
                "generate=true",
                "issuer=Tresor",
                "account_name=alice@example.org",
            ],
        )
        .expect(0, "generate key")
        .json();
    let url = v["data"]["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with("otpauth://totp/Tresor:alice@example.org?"),
        "{url}"
    );
    let secret = secret_of(&url);

    // The barcode decodes as a PNG of the asked size (200 px), checked by a real inflater.
    let png = v["data"]["barcode"].as_str().unwrap();
    let check = r#"
import base64, struct, sys, zlib
b = base64.b64decode(sys.stdin.read())
assert b[:8] == b"\x89PNG\r\n\x1a\n"
pos, idat, w = 8, b"", 0
while pos < len(b):
    n, = struct.unpack(">I", b[pos:pos+4]); kind = b[pos+4:pos+8]; data = b[pos+8:pos+8+n]
    assert zlib.crc32(kind + data) == struct.unpack(">I", b[pos+8+n:pos+12+n])[0]
    if kind == b"IHDR": w, h = struct.unpack(">II", data[:8])
    if kind == b"IDAT": idat += data
    pos += 12 + n
raw = zlib.decompress(idat)
assert len(raw) == h * (w + 1), (len(raw), w, h)
print(w, h)
"#;
    let o = common::run_with_stdin(
        Command::new("python3").args(["-c", check]),
        Some(png.as_bytes()),
    );
    assert_eq!(o.code, 0, "{o}");
    assert_eq!(o.stdout.trim(), "200 200");

    // The code an authenticator app shows is accepted once, then refused.
    let code = oathtool(&["--totp", "-b", &secret]);
    let ok = s
        .bao_as(
            "root",
            &[
                "write",
                "-format=json",
                "totp/code/app",
                &format!("code={code}"),
            ],
        )
        .expect(0, "validate")
        .json();
    assert_eq!(ok["data"]["valid"], true);
    let again = s.bao_as("root", &["write", "totp/code/app", &format!("code={code}")]);
    assert_eq!(again.code, 2, "{again}");
    assert!(again.stderr.contains("code already used"), "{again}");
    // A wrong code is simply not valid.
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let (status, v) = s.api(
        "POST",
        "totp/code/app",
        Some(&format!(r#"{{"code":"{wrong}"}}"#)),
        Some("root"),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["valid"], false);
    // The generated code is one oathtool would accept too (this step or a neighbour).
    let shown = s
        .bao_as("root", &["read", "-field=code", "totp/code/app"])
        .expect(0, "read code");
    let window = oathtool(&["--totp", "-w", "2", "-N", "now - 30 seconds", "-b", &secret]);
    assert!(
        window.lines().any(|l| l == shown.stdout.trim()),
        "{} not in {window}",
        shown.stdout
    );

    // A URL made elsewhere: SHA256, 8 digits, 60 s steps.
    let foreign = "otpauth://totp/Example:bob%40example.org?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example&algorithm=SHA256&digits=8&period=60";
    s.bao_as(
        "root",
        &["write", "totp/keys/bob", &format!("url={foreign}")],
    )
    .expect(0, "import url");
    let r = s
        .bao_as("root", &["read", "-format=json", "totp/keys/bob"])
        .expect(0, "read key")
        .json();
    assert_eq!(r["data"]["algorithm"], "SHA256");
    assert_eq!(r["data"]["digits"], 8);
    assert_eq!(r["data"]["period"], 60);
    assert_eq!(r["data"]["account_name"], "bob@example.org");
    let code = oathtool(&[
        "--totp=sha256",
        "-d",
        "8",
        "-s",
        "60",
        "-b",
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
    ]);
    let ok = s
        .bao_as(
            "root",
            &[
                "write",
                "-format=json",
                "totp/code/bob",
                &format!("code={code}"),
            ],
        )
        .expect(0, "validate imported")
        .json();
    assert_eq!(ok["data"]["valid"], true);

    // A base32 key alone imports too.
    s.bao_as(
        "root",
        &["write", "totp/keys/plain", "key=JBSWY3DPEHPK3PXP"],
    )
    .expect(0, "import key");
    let code = oathtool(&["--totp", "-b", "JBSWY3DPEHPK3PXP"]);
    let ok = s
        .bao_as(
            "root",
            &[
                "write",
                "-format=json",
                "totp/code/plain",
                &format!("code={code}"),
            ],
        )
        .expect(0, "validate plain")
        .json();
    assert_eq!(ok["data"]["valid"], true);

    let list = s
        .bao_as("root", &["list", "-format=json", "totp/keys"])
        .expect(0, "list")
        .json();
    assert_eq!(list, serde_json::json!(["app", "bob", "plain"]));

    // Bad input: 400 with Vault's errors list, and nothing stored.
    for (body, want) in [
        (r#"{"key":"not base32!"}"#, "invalid key value"),
        (
            r#"{"generate":true,"issuer":"x"}"#,
            "account_name value is required",
        ),
        (
            r#"{"generate":true,"issuer":"x","account_name":"y","digits":7}"#,
            "digits value can only be 6 or 8",
        ),
        (r#"{"url":"https://example.org"}"#, "otpauth://"),
    ] {
        let (status, v) = s.api("POST", "totp/keys/bad", Some(body), Some("root"));
        assert_eq!(status, 400, "{body}: {v}");
        assert!(errors(&v)[0].contains(want), "{body}: {v}");
    }
    let (status, _) = s.api("GET", "totp/keys/bad", None, Some("root"));
    assert_eq!(status, 404);
    let (status, v) = s.api(
        "POST",
        "totp/code/missing",
        Some(r#"{"code":"123456"}"#),
        Some("root"),
    );
    assert_eq!(status, 400);
    assert_eq!(errors(&v), ["unknown key: missing"]);
}
