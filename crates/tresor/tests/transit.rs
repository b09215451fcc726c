//! Issue 15 end to end: the transit engine on a real `tresor server -dev`, driven as a new
//! user would, with the `bao` CLI, curl and `openssl`: encrypt and decrypt base64 plaintext,
//! rotate, rewrap without plaintext, min_decryption_version, a batch of 1,000 items, derived
//! and convergent keys, signatures from ed25519, ECDSA P-256 and RSA-2048 (PSS and PKCS#1
//! v1.5) verified by openssl with the exported public key, upsert needing create capability,
//! and bad input as clear 4xx answers that store nothing.

mod common;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Server, errors, free_port, run};
use serde_json::{Value, json};

fn dev() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    s.bao_as("root", &["secrets", "enable", "transit"])
        .expect(0, "secrets enable transit");
    (dir, s)
}

/// `bao write -format=json ARGS` as root: the `data` of the answer.
fn write(s: &Server, args: &[&str]) -> Value {
    let mut a = vec!["write", "-format=json"];
    a.extend_from_slice(args);
    s.bao_as("root", &a).expect(0, &args.join(" ")).json()["data"].clone()
}

fn b64(b: &[u8]) -> String {
    B64.encode(b)
}

fn sig_bytes(sig: &str) -> Vec<u8> {
    let body = sig.splitn(3, ':').nth(2).expect("vault:vN:...");
    B64.decode(body).unwrap()
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = B64.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// The exported public key of `key`, as a PEM file for openssl.
fn public_key_file(s: &Server, key: &str, ty: &str) -> std::path::PathBuf {
    let d = s
        .bao_as(
            "root",
            &[
                "read",
                "-format=json",
                &format!("transit/export/public-key/{key}"),
            ],
        )
        .expect(0, "export public-key")
        .json();
    let k = d["data"]["keys"]["1"].as_str().unwrap().to_owned();
    let text = if ty == "ed25519" {
        // Raw 32 bytes, as Vault exports them: wrapped in a SubjectPublicKeyInfo.
        let mut der = hex::decode("302a300506032b6570032100").unwrap();
        der.extend(B64.decode(&k).unwrap());
        pem("PUBLIC KEY", &der)
    } else {
        assert!(k.starts_with("-----BEGIN PUBLIC KEY-----"), "{k}");
        k
    };
    let path = s.dir.join(format!("{key}.pub.pem"));
    std::fs::write(&path, text).unwrap();
    path
}

fn openssl(dir: &Path, args: &[&str]) -> common::Out {
    run(Command::new("openssl").args(args).current_dir(dir))
}

#[test]
fn encrypt_rotate_rewrap_and_batches_with_bao() {
    let (_dir, s) = dev();
    s.bao_as("root", &["write", "-f", "transit/keys/app"])
        .expect(0, "create key");
    let plaintext = b"the quick brown fox \x00\xff binary too";
    let d = write(
        &s,
        &[
            "transit/encrypt/app",
            &format!("plaintext={}", b64(plaintext)),
        ],
    );
    let ct1 = d["ciphertext"].as_str().unwrap().to_owned();
    assert!(ct1.starts_with("vault:v1:"), "{ct1}");
    let d = write(&s, &["transit/decrypt/app", &format!("ciphertext={ct1}")]);
    assert_eq!(
        B64.decode(d["plaintext"].as_str().unwrap()).unwrap(),
        plaintext
    );

    // Rotate, then rewrap to v2: the answer has no plaintext.
    s.bao_as("root", &["write", "-f", "transit/keys/app/rotate"])
        .expect(0, "rotate");
    let d = write(&s, &["transit/rewrap/app", &format!("ciphertext={ct1}")]);
    let ct2 = d["ciphertext"].as_str().unwrap().to_owned();
    assert!(ct2.starts_with("vault:v2:"), "{ct2}");
    assert!(d.get("plaintext").is_none(), "{d}");
    let d = write(&s, &["transit/decrypt/app", &format!("ciphertext={ct2}")]);
    assert_eq!(
        B64.decode(d["plaintext"].as_str().unwrap()).unwrap(),
        plaintext
    );

    // min_decryption_version=2 refuses v1 ciphertext.
    s.bao_as(
        "root",
        &[
            "write",
            "transit/keys/app/config",
            "min_decryption_version=2",
        ],
    )
    .expect(0, "config");
    let o = s.bao_as(
        "root",
        &["write", "transit/decrypt/app", &format!("ciphertext={ct1}")],
    );
    assert_eq!(o.code, 2, "{o}");
    assert!(o.stderr.contains("too old"), "{o}");
    let read = s
        .bao_as("root", &["read", "-format=json", "transit/keys/app"])
        .expect(0, "read key")
        .json();
    assert_eq!(read["data"]["min_decryption_version"], 2);
    assert_eq!(read["data"]["latest_version"], 2);

    // A batch of 1,000 items in one request, and back.
    let items: Vec<Value> = (0..1000)
        .map(|i| json!({"plaintext": b64(format!("record {i:04}").as_bytes())}))
        .collect();
    std::fs::write(
        s.dir.join("batch.json"),
        json!({"batch_input": items}).to_string(),
    )
    .unwrap();
    let d = write(&s, &["transit/encrypt/app", "@batch.json"]);
    let results = d["batch_results"].as_array().unwrap();
    assert_eq!(results.len(), 1000);
    assert!(
        results
            .iter()
            .all(|r| r["ciphertext"].as_str().unwrap().starts_with("vault:v2:"))
    );
    let back: Vec<Value> = results
        .iter()
        .map(|r| json!({"ciphertext": r["ciphertext"]}))
        .collect();
    std::fs::write(
        s.dir.join("back.json"),
        json!({"batch_input": back}).to_string(),
    )
    .unwrap();
    let d = write(&s, &["transit/decrypt/app", "@back.json"]);
    let out = d["batch_results"].as_array().unwrap();
    assert_eq!(out.len(), 1000);
    assert_eq!(
        B64.decode(out[123]["plaintext"].as_str().unwrap()).unwrap(),
        b"record 0123"
    );

    // A derived key needs its context.
    s.bao_as("root", &["write", "transit/keys/tenant", "derived=true"])
        .expect(0, "derived key");
    let o = s.bao_as(
        "root",
        &["write", "transit/encrypt/tenant", "plaintext=aGk="],
    );
    assert_eq!(o.code, 2, "{o}");
    assert!(o.stderr.contains("context"), "{o}");
    let ctx = format!("context={}", b64(b"customer-42"));
    let d = write(&s, &["transit/encrypt/tenant", "plaintext=aGk=", &ctx]);
    let ct = d["ciphertext"].as_str().unwrap().to_owned();
    let d = write(
        &s,
        &["transit/decrypt/tenant", &format!("ciphertext={ct}"), &ctx],
    );
    assert_eq!(d["plaintext"], "aGk=");

    // A convergent key: same plaintext and context, same ciphertext.
    s.bao_as(
        "root",
        &[
            "write",
            "transit/keys/conv",
            "derived=true",
            "convergent_encryption=true",
        ],
    )
    .expect(0, "convergent key");
    let a = write(&s, &["transit/encrypt/conv", "plaintext=c2FtZQ==", &ctx]);
    let b = write(&s, &["transit/encrypt/conv", "plaintext=c2FtZQ==", &ctx]);
    assert_eq!(a["ciphertext"], b["ciphertext"]);
    let c = write(
        &s,
        &[
            "transit/encrypt/conv",
            "plaintext=c2FtZQ==",
            &format!("context={}", b64(b"other")),
        ],
    );
    assert_ne!(a["ciphertext"], c["ciphertext"]);
}

#[test]
fn signatures_verify_with_openssl() {
    let (_dir, s) = dev();
    let msg = b"a message to sign, signed by transit";
    std::fs::write(s.dir.join("msg.bin"), msg).unwrap();
    let input = format!("input={}", b64(msg));
    for (key, ty, extra) in [
        ("ed", "ed25519", None),
        ("ec", "ecdsa-p256", None),
        ("rsa-pss", "rsa-2048", Some("signature_algorithm=pss")),
        ("rsa-pkcs", "rsa-2048", Some("signature_algorithm=pkcs1v15")),
    ] {
        s.bao_as(
            "root",
            &[
                "write",
                &format!("transit/keys/{key}"),
                &format!("type={ty}"),
            ],
        )
        .expect(0, "create signing key");
        let mut args = vec![format!("transit/sign/{key}"), input.clone()];
        args.extend(extra.map(str::to_owned));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let d = write(&s, &refs);
        let sig = d["signature"].as_str().unwrap();
        assert!(sig.starts_with("vault:v1:"), "{sig}");
        let sig_file = s.dir.join(format!("{key}.sig"));
        std::fs::write(&sig_file, sig_bytes(sig)).unwrap();
        let pub_file = public_key_file(&s, key, ty);
        let (p, sf) = (pub_file.to_str().unwrap(), sig_file.to_str().unwrap());
        let o = match (ty, extra) {
            ("ed25519", _) => openssl(
                &s.dir,
                &[
                    "pkeyutl", "-verify", "-pubin", "-inkey", p, "-rawin", "-in", "msg.bin",
                    "-sigfile", sf,
                ],
            ),
            (_, Some("signature_algorithm=pss")) => openssl(
                &s.dir,
                &[
                    "dgst",
                    "-sha256",
                    "-sigopt",
                    "rsa_padding_mode:pss",
                    "-sigopt",
                    "rsa_pss_saltlen:auto",
                    "-verify",
                    p,
                    "-signature",
                    sf,
                    "msg.bin",
                ],
            ),
            _ => openssl(
                &s.dir,
                &["dgst", "-sha256", "-verify", p, "-signature", sf, "msg.bin"],
            ),
        };
        assert_eq!(o.code, 0, "openssl refused the {key} signature\n{o}");
        assert!(
            o.stdout.contains("Verified") || o.stdout.contains("Verified Successfully"),
            "{o}"
        );
        // And transit verifies its own signature, and refuses a changed message.
        let mut v = vec![
            format!("transit/verify/{key}"),
            input.clone(),
            format!("signature={sig}"),
        ];
        v.extend(extra.map(str::to_owned));
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        assert_eq!(write(&s, &refs)["valid"], true);
        v[1] = format!("input={}", b64(b"changed"));
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        assert_eq!(write(&s, &refs)["valid"], false);
    }
}

#[test]
fn bad_input_is_a_clear_4xx_and_stores_nothing() {
    let (_dir, s) = dev();
    let root = Some("root");
    let (code, _) = s.api("POST", "transit/keys/a", Some("{}"), root);
    assert_eq!(code, 200);
    let (code, _) = s.api("POST", "transit/keys/b", Some("{}"), root);
    assert_eq!(code, 200);
    let keys = || s.api("LIST", "transit/keys", None, root).1["data"]["keys"].clone();
    let before = keys();

    let (code, v) = s.api(
        "POST",
        "transit/keys/c",
        Some(r#"{"type":"aes1024-gcm"}"#),
        root,
    );
    assert_eq!(code, 400, "{v}");
    assert!(errors(&v)[0].contains("unknown key type"), "{v}");
    let (code, v) = s.api(
        "POST",
        "transit/keys/c",
        Some(r#"{"type":"hmac","key_size":8}"#),
        root,
    );
    assert_eq!(code, 400, "{v}");
    let (code, v) = s.api(
        "POST",
        "transit/encrypt/a",
        Some(r#"{"plaintext":"not*base64"}"#),
        root,
    );
    assert_eq!(code, 400, "{v}");
    assert!(errors(&v)[0].contains("base64"), "{v}");
    // A ciphertext of another key.
    let (_, v) = s.api(
        "POST",
        "transit/encrypt/b",
        Some(r#"{"plaintext":"aGk="}"#),
        root,
    );
    let foreign = v["data"]["ciphertext"].as_str().unwrap().to_owned();
    let (code, v) = s.api(
        "POST",
        "transit/decrypt/a",
        Some(&json!({"ciphertext": foreign}).to_string()),
        root,
    );
    assert_eq!(code, 400, "{v}");
    assert!(errors(&v)[0].contains("authentication failed"), "{v}");
    let (code, v) = s.api(
        "POST",
        "transit/decrypt/a",
        Some(r#"{"ciphertext":"vault:v1"}"#),
        root,
    );
    assert_eq!(code, 400, "{v}");
    assert!(errors(&v)[0].contains("invalid ciphertext"), "{v}");
    let (code, v) = s.api(
        "POST",
        "transit/decrypt/missing",
        Some(r#"{"ciphertext":"vault:v1:AAAA"}"#),
        root,
    );
    assert_eq!(code, 400, "{v}");
    // A batch with one bad item: 400 with every item's result.
    let (code, v) = s.api(
        "POST",
        "transit/encrypt/a",
        Some(r#"{"batch_input":[{"plaintext":"aGk="},{"plaintext":"@@"}]}"#),
        root,
    );
    assert_eq!(code, 400, "{v}");
    let r = v["data"]["batch_results"].as_array().unwrap();
    assert!(
        r[0]["ciphertext"].is_string() && r[1]["error"].is_string(),
        "{v}"
    );
    // Deleting without deletion_allowed.
    let (code, v) = s.api("DELETE", "transit/keys/a", None, root);
    assert_eq!(code, 400, "{v}");
    assert_eq!(keys(), before, "bad input stored something");

    // Encrypting to a missing key creates it: that needs create capability.
    std::fs::write(
        s.dir.join("enc.hcl"),
        r#"path "transit/encrypt/*" { capabilities = ["update"] }"#,
    )
    .unwrap();
    s.bao_as("root", &["policy", "write", "enc", "enc.hcl"])
        .expect(0, "policy");
    let tok = s
        .bao_as("root", &["token", "create", "-format=json", "-policy=enc"])
        .expect(0, "token")
        .json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, v) = s.api(
        "POST",
        "transit/encrypt/a",
        Some(r#"{"plaintext":"aGk="}"#),
        Some(&tok),
    );
    assert_eq!(code, 200, "{v}");
    let (code, v) = s.api(
        "POST",
        "transit/encrypt/new-key",
        Some(r#"{"plaintext":"aGk="}"#),
        Some(&tok),
    );
    assert_eq!(code, 403, "{v}");
    assert_eq!(keys(), before);
    let (code, v) = s.api(
        "POST",
        "transit/encrypt/new-key",
        Some(r#"{"plaintext":"aGk="}"#),
        root,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        s.api("GET", "transit/keys/new-key", None, root).1["data"]["type"],
        "aes256-gcm96"
    );
}

/// A real OpenBao dev server (the `bao` binary), killed by PID on drop.
struct OpenBao {
    child: std::process::Child,
    addr: String,
}

impl OpenBao {
    fn start(dir: &Path) -> OpenBao {
        let port = free_port();
        let log = std::fs::File::create(dir.join("openbao.log")).unwrap();
        let child = common::clean_command(common::bao_bin())
            .args([
                "server",
                "-dev",
                "-dev-root-token-id=root",
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .env("HOME", dir)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start bao server -dev");
        let b = OpenBao {
            child,
            addr: format!("http://127.0.0.1:{port}"),
        };
        let deadline = std::time::Instant::now() + common::READY_TIMEOUT;
        while b.bao(&["status"]).code != 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "OpenBao did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        b
    }

    fn bao(&self, args: &[&str]) -> common::Out {
        run(common::clean_command(common::bao_bin())
            .args(args)
            .env("VAULT_ADDR", &self.addr)
            .env("VAULT_TOKEN", "root"))
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Keys move between OpenBao 2.7.2 and Tresor with backup/restore, both ways, and what one
/// encrypted or signed the other decrypts or verifies; convergent keys give the same
/// ciphertext on both.
#[test]
fn backups_move_keys_between_openbao_and_tresor() {
    let (dir, s) = dev();
    let ob = OpenBao::start(dir.path());
    ob.bao(&["secrets", "enable", "transit"])
        .expect(0, "openbao enable transit");
    let tresor = |args: &[&str]| s.bao_as("root", args);
    let openbao = |args: &[&str]| ob.bao(args);
    type Side<'a> = &'a dyn Fn(&[&str]) -> common::Out;
    let sides: [(&str, Side, Side); 2] = [
        ("openbao-to-tresor", &openbao, &tresor),
        ("tresor-to-openbao", &tresor, &openbao),
    ];
    for (dir_name, src, dst) in sides {
        for ty in [
            "aes256-gcm96",
            "aes128-gcm96",
            "chacha20-poly1305",
            "ed25519",
            "ecdsa-p256",
            "ecdsa-p384",
            "rsa-2048",
        ] {
            let key = format!("{ty}-{dir_name}");
            src(&[
                "write",
                &format!("transit/keys/{key}"),
                &format!("type={ty}"),
                "exportable=true",
                "allow_plaintext_backup=true",
            ])
            .expect(0, "create");
            src(&["write", "-f", &format!("transit/keys/{key}/rotate")]).expect(0, "rotate");
            let symmetric = !ty.starts_with("e") && !ty.starts_with("rsa");
            let made = if symmetric {
                src(&[
                    "write",
                    "-field=ciphertext",
                    &format!("transit/encrypt/{key}"),
                    "plaintext=aGVsbG8=",
                ])
            } else {
                src(&[
                    "write",
                    "-field=signature",
                    &format!("transit/sign/{key}"),
                    "input=aGVsbG8=",
                ])
            }
            .expect(0, "encrypt or sign");
            let made = made.stdout.trim().to_owned();
            let backup = src(&["read", "-field=backup", &format!("transit/backup/{key}")])
                .expect(0, "backup");
            dst(&[
                "write",
                &format!("transit/restore/{key}"),
                &format!("backup={}", backup.stdout.trim()),
            ])
            .expect(0, &format!("restore {key}"));
            let got = if symmetric {
                dst(&[
                    "write",
                    "-field=plaintext",
                    &format!("transit/decrypt/{key}"),
                    &format!("ciphertext={made}"),
                ])
            } else {
                dst(&[
                    "write",
                    "-field=valid",
                    &format!("transit/verify/{key}"),
                    "input=aGVsbG8=",
                    &format!("signature={made}"),
                ])
            }
            .expect(0, &format!("{key}: decrypt or verify"));
            let want = if symmetric { "aGVsbG8=" } else { "true" };
            assert_eq!(got.stdout.trim(), want, "{key}");
        }
        let key = format!("conv-{dir_name}");
        src(&[
            "write",
            &format!("transit/keys/{key}"),
            "derived=true",
            "convergent_encryption=true",
            "exportable=true",
            "allow_plaintext_backup=true",
        ])
        .expect(0, "convergent key");
        let enc = |side: Side| {
            side(&[
                "write",
                "-field=ciphertext",
                &format!("transit/encrypt/{key}"),
                "plaintext=aGVsbG8=",
                "context=Y3R4",
            ])
            .expect(0, "convergent encrypt")
            .stdout
        };
        let a = enc(src);
        let backup =
            src(&["read", "-field=backup", &format!("transit/backup/{key}")]).expect(0, "backup");
        dst(&[
            "write",
            &format!("transit/restore/{key}"),
            &format!("backup={}", backup.stdout.trim()),
        ])
        .expect(0, "restore convergent");
        assert_eq!(a, enc(dst), "{key}: convergent ciphertext differs");
    }
}
