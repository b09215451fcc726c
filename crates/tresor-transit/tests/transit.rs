//! The transit engine in-process, through a real dev core on in-memory storage and a clock the
//! tests move: keys and their settings, encryption in Vault's layout (checked against
//! aws-lc-rs directly), batches, derivation and convergence, signatures of every type,
//! HMACs, export, backup/restore, BYOK import, trimming, automatic rotation, bad input.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::signature::{self, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value, json};
use tresor_core::{Core, CoreConfig, CoreError, CoreRequest, CoreResponse};
use tresor_physical::InmemBackend;
use tresor_sdk::Operation::{self, Create, Delete, List, Read, Update};
use tresor_sdk::clock::ManualClock;

const T0: i64 = 1_700_000_000;

struct T {
    core: Core,
    clock: Arc<ManualClock>,
    root: String,
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => panic!("request data must be an object, got {other}"),
    }
}

fn b64(b: &[u8]) -> String {
    B64.encode(b)
}

fn unb64(s: &str) -> Vec<u8> {
    B64.decode(s).unwrap()
}

async fn setup() -> T {
    let clock = Arc::new(ManualClock::at(T0));
    let cfg = CoreConfig {
        clock: clock.clone(),
        ..Default::default()
    };
    let mut core = Core::new(Arc::new(InmemBackend::new()), cfg);
    let c = clock.clone();
    core.register_engine(
        "transit",
        Arc::new(move |_| Ok(tresor_transit::backend_with_clock(c.clone()))),
    );
    let (_key, root) = core.init_dev(Some("root".into())).await.expect("dev init");
    let t = T {
        core,
        clock,
        root: root.to_string(),
    };
    t.ok(Update, "sys/mounts/transit", json!({"type": "transit"}))
        .await;
    t
}

impl T {
    async fn req(&self, op: Operation, path: &str, data: Value) -> Result<CoreResponse, CoreError> {
        self.core
            .handle(CoreRequest::new(op, path, obj(data), Some(&self.root)))
            .await
    }

    async fn ok(&self, op: Operation, path: &str, data: Value) -> CoreResponse {
        match self.req(op, path, data).await {
            Ok(r) => r,
            Err(e) => panic!("{op:?} {path} failed: {e}"),
        }
    }

    async fn data(&self, op: Operation, path: &str, data: Value) -> Map<String, Value> {
        let r = self.ok(op, path, data).await.response;
        r.and_then(|r| r.data)
            .unwrap_or_else(|| panic!("{op:?} {path}: no data"))
    }

    async fn err(&self, op: Operation, path: &str, data: Value) -> String {
        match self.req(op, path, data).await {
            Ok(r) => panic!("{op:?} {path} succeeded: {:?}", r.response),
            Err(e) => {
                assert!(
                    matches!(e, CoreError::InvalidRequest(_)),
                    "{op:?} {path}: not a 400: {e:?}"
                );
                e.to_string()
            }
        }
    }

    /// A batch answer with failed items: (status, body).
    async fn batch_failure(&self, path: &str, data: Value) -> (u16, Value) {
        let r = self.ok(Update, path, data).await;
        let raw = r.response.and_then(|r| r.raw).expect("a raw batch answer");
        (raw.status, serde_json::from_slice(&raw.body).unwrap())
    }

    async fn encrypt(&self, key: &str, plaintext: &[u8], extra: Value) -> String {
        let mut body = obj(extra);
        body.insert("plaintext".into(), json!(b64(plaintext)));
        self.data(
            Update,
            &format!("transit/encrypt/{key}"),
            Value::Object(body),
        )
        .await["ciphertext"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn decrypt(&self, key: &str, ct: &str, extra: Value) -> Vec<u8> {
        let mut body = obj(extra);
        body.insert("ciphertext".into(), json!(ct));
        unb64(
            self.data(
                Update,
                &format!("transit/decrypt/{key}"),
                Value::Object(body),
            )
            .await["plaintext"]
                .as_str()
                .unwrap(),
        )
    }

    async fn stored_keys(&self) -> usize {
        self.ok(List, "transit/keys", json!({}))
            .await
            .response
            .and_then(|r| r.data)
            .and_then(|d| d.get("keys").and_then(Value::as_array).map(Vec::len))
            .unwrap_or(0)
    }
}

#[tokio::test]
async fn keys_are_created_read_listed_configured_and_deleted() {
    let t = setup().await;
    let d = t.data(Update, "transit/keys/app", json!({})).await;
    assert_eq!(d["type"], "aes256-gcm96");
    assert_eq!(d["latest_version"], 1);
    assert_eq!(d["min_decryption_version"], 1);
    assert_eq!(d["keys"]["1"], json!(T0));
    assert_eq!(d["supports_encryption"], true);
    assert_eq!(d["supports_signing"], false);
    for ty in [
        "aes128-gcm96",
        "chacha20-poly1305",
        "ed25519",
        "ecdsa-p256",
        "ecdsa-p384",
        "ecdsa-p521",
        "rsa-2048",
        "hmac",
    ] {
        let d = t
            .data(Update, &format!("transit/keys/k-{ty}"), json!({"type": ty}))
            .await;
        assert_eq!(d["type"], ty);
        if ty.starts_with("ecdsa") || ty.starts_with("rsa") {
            let pk = d["keys"]["1"]["public_key"].as_str().unwrap();
            assert!(pk.starts_with("-----BEGIN PUBLIC KEY-----"), "{pk}");
        }
    }
    let list = t.data(List, "transit/keys", json!({})).await;
    assert_eq!(list["keys"].as_array().unwrap().len(), 9);
    // Creating again changes nothing.
    let again = t
        .data(Update, "transit/keys/app", json!({"type": "ed25519"}))
        .await;
    assert_eq!(again["type"], "aes256-gcm96");
    // Delete needs deletion_allowed; the refusal names the key as Vault's does (node-vault
    // 0.12's transitDeleteKey passes the text on as its error's message).
    let e = t.err(Delete, "transit/keys/app", json!({})).await;
    assert_eq!(
        e, "error deleting policy app: deletion is not allowed for this key",
        "{e}"
    );
    let e = t.err(Delete, "transit/keys/never", json!({})).await;
    assert_eq!(
        e, "error deleting policy never: could not delete key; not found",
        "{e}"
    );
    t.ok(
        Update,
        "transit/keys/app/config",
        json!({"deletion_allowed": true}),
    )
    .await;
    t.ok(Delete, "transit/keys/app", json!({})).await;
    assert!(
        t.ok(Read, "transit/keys/app", json!({}))
            .await
            .response
            .is_none()
    );
    // Bad input stores nothing.
    let before = t.stored_keys().await;
    let e = t
        .err(Update, "transit/keys/bad", json!({"type": "aes512-gcm"}))
        .await;
    assert!(e.contains("unknown key type"), "{e}");
    let e = t
        .err(
            Update,
            "transit/keys/bad",
            json!({"convergent_encryption": true}),
        )
        .await;
    assert!(e.contains("derivation"), "{e}");
    let e = t
        .err(
            Update,
            "transit/keys/bad",
            json!({"auto_rotate_period": "10m"}),
        )
        .await;
    assert!(e.contains("at least an hour"), "{e}");
    assert_eq!(t.stored_keys().await, before);
}

#[tokio::test]
async fn ciphertext_is_vaults_layout_and_rotation_rewrap_and_min_versions_work() {
    let t = setup().await;
    t.ok(Update, "transit/keys/app", json!({"exportable": true}))
        .await;
    let ct = t.encrypt("app", b"hello world", json!({})).await;
    assert!(ct.starts_with("vault:v1:"), "{ct}");
    assert_eq!(t.decrypt("app", &ct, json!({})).await, b"hello world");
    // The layout is nonce || ciphertext || tag under the exported key.
    let exported = t
        .data(Read, "transit/export/encryption-key/app/1", json!({}))
        .await;
    let key = unb64(exported["keys"]["1"].as_str().unwrap());
    let raw = unb64(ct.strip_prefix("vault:v1:").unwrap());
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap());
    let mut body = raw[12..].to_vec();
    let pt = k
        .open_in_place(
            Nonce::try_assume_unique_for_key(&raw[..12]).unwrap(),
            Aad::empty(),
            &mut body,
        )
        .unwrap();
    assert_eq!(pt, b"hello world");

    t.ok(Update, "transit/keys/app/rotate", json!({})).await;
    let rewrapped = t
        .data(Update, "transit/rewrap/app", json!({"ciphertext": ct}))
        .await;
    let ct2 = rewrapped["ciphertext"].as_str().unwrap().to_owned();
    assert!(ct2.starts_with("vault:v2:"), "{ct2}");
    assert_eq!(rewrapped["key_version"], 2);
    assert!(rewrapped.get("plaintext").is_none());
    assert_eq!(t.decrypt("app", &ct2, json!({})).await, b"hello world");
    // Encrypting with an explicit older version, then moving min_decryption_version past it.
    let old = t.encrypt("app", b"x", json!({"key_version": 1})).await;
    assert!(old.starts_with("vault:v1:"));
    t.ok(
        Update,
        "transit/keys/app/config",
        json!({"min_decryption_version": 2}),
    )
    .await;
    let e = t
        .err(Update, "transit/decrypt/app", json!({"ciphertext": ct}))
        .await;
    assert!(e.contains("too old"), "{e}");
    let e = t
        .err(
            Update,
            "transit/encrypt/app",
            json!({"plaintext": "eA==", "key_version": 1}),
        )
        .await;
    assert!(e.contains("minimum decryption"), "{e}");
    // Trim deletes version 1 for good.
    let e = t
        .err(
            Update,
            "transit/keys/app/trim",
            json!({"min_available_version": 3}),
        )
        .await;
    assert!(e.contains("minimum decryption"), "{e}");
    // As in Vault, trimming needs min_encryption_version pinned (0 follows the latest).
    let e = t
        .err(
            Update,
            "transit/keys/app/trim",
            json!({"min_available_version": 2}),
        )
        .await;
    assert!(e.contains("minimum encryption version is not set"), "{e}");
    assert!(
        t.data(Read, "transit/keys/app", json!({})).await["keys"]
            .get("1")
            .is_some()
    );
    t.ok(
        Update,
        "transit/keys/app/config",
        json!({"min_encryption_version": 2}),
    )
    .await;
    // The answer is the key, as Vault's.
    let d = t
        .data(
            Update,
            "transit/keys/app/trim",
            json!({"min_available_version": 2}),
        )
        .await;
    assert_eq!(d["min_available_version"], 2);
    let d = t.data(Read, "transit/keys/app", json!({})).await;
    assert_eq!(d["min_available_version"], 2);
    assert!(d["keys"].get("1").is_none());
    assert_eq!(t.decrypt("app", &ct2, json!({})).await, b"hello world");
    // Bad input: not base64, another key's ciphertext, no prefix.
    let e = t
        .err(
            Update,
            "transit/encrypt/app",
            json!({"plaintext": "not base64!"}),
        )
        .await;
    assert!(e.contains("base64"), "{e}");
    t.ok(Update, "transit/keys/other", json!({})).await;
    let foreign = t.encrypt("other", b"secret", json!({})).await;
    t.ok(Update, "transit/keys/other/rotate", json!({})).await;
    let foreign2 = t.encrypt("other", b"secret", json!({})).await;
    let e = t
        .err(
            Update,
            "transit/decrypt/app",
            json!({"ciphertext": foreign2}),
        )
        .await;
    assert!(e.contains("message authentication failed"), "{e}");
    let e = t
        .err(
            Update,
            "transit/decrypt/app",
            json!({"ciphertext": foreign}),
        )
        .await;
    assert!(e.contains("too old"), "{e}");
    let e = t
        .err(
            Update,
            "transit/decrypt/app",
            json!({"ciphertext": "v2:abcd"}),
        )
        .await;
    assert!(e.contains("invalid ciphertext"), "{e}");
    // Too short for a nonce is a length error; a nonce without a whole tag fails
    // authentication, as in Vault (node-vault 0.12's rewrapData shows the text).
    for (bytes, want) in [
        (3, "invalid ciphertext length"),
        (11, "invalid ciphertext length"),
        (12, "cipher: message authentication failed"),
        (27, "cipher: message authentication failed"),
    ] {
        let short = format!("vault:v2:{}", B64.encode(vec![7u8; bytes]));
        for op in ["decrypt", "rewrap"] {
            let e = t
                .err(
                    Update,
                    &format!("transit/{op}/other"),
                    json!({"ciphertext": short}),
                )
                .await;
            assert_eq!(e, want, "{op} of {bytes} bytes");
        }
    }
    // A key that does not exist: decrypt refuses; an encrypt creates it (the write becomes a
    // create; a token without create capability is refused by the ACL, see the e2e test).
    let e = t
        .err(Update, "transit/decrypt/nope", json!({"ciphertext": ct2}))
        .await;
    assert!(e.contains("not found"), "{e}");
    let ct = t
        .data(
            Create,
            "transit/encrypt/upserted",
            json!({"plaintext": "eA==", "type": "chacha20-poly1305"}),
        )
        .await["ciphertext"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        t.data(Read, "transit/keys/upserted", json!({})).await["type"],
        "chacha20-poly1305"
    );
    assert_eq!(t.decrypt("upserted", &ct, json!({})).await, b"x");
}

#[tokio::test]
async fn batches_report_errors_per_item() {
    let t = setup().await;
    t.ok(Update, "transit/keys/b", json!({})).await;
    let items: Vec<Value> = (0..1000)
        .map(|i| json!({"plaintext": b64(format!("item {i}").as_bytes()), "reference": format!("r{i}")}))
        .collect();
    let d = t
        .data(Update, "transit/encrypt/b", json!({"batch_input": items}))
        .await;
    let results = d["batch_results"].as_array().unwrap();
    assert_eq!(results.len(), 1000);
    assert_eq!(results[7]["reference"], "r7");
    let cts: Vec<Value> = results
        .iter()
        .map(|r| json!({"ciphertext": r["ciphertext"]}))
        .collect();
    let d = t
        .data(Update, "transit/decrypt/b", json!({"batch_input": cts}))
        .await;
    let results = d["batch_results"].as_array().unwrap();
    assert_eq!(
        unb64(results[999]["plaintext"].as_str().unwrap()),
        b"item 999"
    );
    // One bad item: 400 with every result, the bad one carrying its error.
    let (status, body) = t
        .batch_failure(
            "transit/encrypt/b",
            json!({"batch_input": [{"plaintext": "aGk="}, {"plaintext": "%%%"}]}),
        )
        .await;
    assert_eq!(status, 400);
    let results = body["data"]["batch_results"].as_array().unwrap();
    assert!(
        results[0]["ciphertext"]
            .as_str()
            .unwrap()
            .starts_with("vault:v1:")
    );
    assert!(
        results[1]["error"].as_str().unwrap().contains("base64"),
        "{body}"
    );
    let (status, _) = t
        .batch_failure(
            "transit/decrypt/b",
            json!({"batch_input": [{"ciphertext": "vault:v1:AAAA"}, {"ciphertext": results[0]["ciphertext"]}],
                   "partial_failure_response_code": 207}),
        )
        .await;
    assert_eq!(status, 207);
}

#[tokio::test]
async fn derived_and_convergent_keys() {
    let t = setup().await;
    t.ok(Update, "transit/keys/d", json!({"derived": true}))
        .await;
    let e = t
        .err(Update, "transit/encrypt/d", json!({"plaintext": "eA=="}))
        .await;
    assert!(e.contains("missing 'context'"), "{e}");
    let ctx = json!({"context": b64(b"tenant-1")});
    let ct = t.encrypt("d", b"data", ctx.clone()).await;
    assert_eq!(t.decrypt("d", &ct, ctx).await, b"data");
    let e = t
        .err(
            Update,
            "transit/decrypt/d",
            json!({"ciphertext": ct, "context": b64(b"tenant-2")}),
        )
        .await;
    assert!(e.contains("authentication failed"), "{e}");

    t.ok(
        Update,
        "transit/keys/c",
        json!({"derived": true, "convergent_encryption": true, "exportable": true}),
    )
    .await;
    let ctx = json!({"context": b64(b"ctx")});
    let a = t.encrypt("c", b"same", ctx.clone()).await;
    let b = t.encrypt("c", b"same", ctx.clone()).await;
    assert_eq!(a, b);
    let other = t
        .encrypt("c", b"same", json!({"context": b64(b"ctx2")}))
        .await;
    assert_ne!(a, other);
    assert_ne!(a, t.encrypt("c", b"diff", ctx.clone()).await);
    // Vault's convergent layout: HKDF(key, info=context) gives the AES key then the nonce's
    // HMAC key; the nonce is HMAC-SHA256(plaintext)[..12], stored in front.
    let key = unb64(
        t.data(Read, "transit/export/encryption-key/c/1", json!({}))
            .await["keys"]["1"]
            .as_str()
            .unwrap(),
    );
    let prk = aws_lc_rs::hkdf::Salt::new(aws_lc_rs::hkdf::HKDF_SHA256, &[]).extract(&key);
    struct L;
    impl aws_lc_rs::hkdf::KeyType for L {
        fn len(&self) -> usize {
            64
        }
    }
    let info = [&b"ctx"[..]];
    let mut okm = [0u8; 64];
    prk.expand(&info, L).unwrap().fill(&mut okm).unwrap();
    let mac = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &okm[32..]),
        b"same",
    );
    let raw = unb64(a.strip_prefix("vault:v1:").unwrap());
    assert_eq!(&raw[..12], &mac.as_ref()[..12]);
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &okm[..32]).unwrap());
    let mut body = raw[12..].to_vec();
    let pt = k
        .open_in_place(
            Nonce::try_assume_unique_for_key(&raw[..12]).unwrap(),
            Aad::empty(),
            &mut body,
        )
        .unwrap();
    assert_eq!(pt, b"same");
    // Associated data must match.
    t.ok(Update, "transit/keys/aad", json!({})).await;
    let ct = t
        .encrypt("aad", b"v", json!({"associated_data": b64(b"row-1")}))
        .await;
    assert_eq!(
        t.decrypt("aad", &ct, json!({"associated_data": b64(b"row-1")}))
            .await,
        b"v"
    );
    t.err(Update, "transit/decrypt/aad", json!({"ciphertext": ct}))
        .await;
}

fn public_key_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    unb64(&body)
}

#[tokio::test]
async fn signatures_verify_inside_and_with_aws_lc() {
    let t = setup().await;
    let input = b64(b"sign me");
    for (ty, extra) in [
        ("ed25519", json!({})),
        ("ecdsa-p256", json!({})),
        ("ecdsa-p256", json!({"marshaling_algorithm": "jws"})),
        ("ecdsa-p384", json!({"hash_algorithm": "sha2-384"})),
        ("ecdsa-p521", json!({"hash_algorithm": "sha2-512"})),
        ("ecdsa-p256", json!({"hash_algorithm": "sha3-256"})),
        ("rsa-2048", json!({})),
        ("rsa-2048", json!({"signature_algorithm": "pkcs1v15"})),
        (
            "rsa-2048",
            json!({"signature_algorithm": "pss", "salt_length": "hash", "hash_algorithm": "sha2-512"}),
        ),
    ] {
        let name = format!("s-{ty}");
        t.ok(Update, &format!("transit/keys/{name}"), json!({"type": ty}))
            .await;
        let mut body = obj(extra.clone());
        body.insert("input".into(), json!(input));
        let d = t
            .data(
                Update,
                &format!("transit/sign/{name}"),
                Value::Object(body.clone()),
            )
            .await;
        let sig = d["signature"].as_str().unwrap().to_owned();
        assert!(sig.starts_with("vault:v1:"), "{sig}");
        body.insert("signature".into(), json!(sig));
        let v = t
            .data(
                Update,
                &format!("transit/verify/{name}"),
                Value::Object(body.clone()),
            )
            .await;
        assert_eq!(v["valid"], true, "{ty} {extra}");
        body.insert("input".into(), json!(b64(b"other")));
        let v = t
            .data(
                Update,
                &format!("transit/verify/{name}"),
                Value::Object(body),
            )
            .await;
        assert_eq!(v["valid"], false, "{ty} {extra}");
    }
    // Checked outside the engine with the exported public key.
    let pk = t
        .data(Read, "transit/export/public-key/s-ed25519", json!({}))
        .await;
    let pk = unb64(pk["keys"]["1"].as_str().unwrap());
    let sig = t
        .data(Update, "transit/sign/s-ed25519", json!({"input": input}))
        .await;
    let sig = unb64(
        sig["signature"]
            .as_str()
            .unwrap()
            .strip_prefix("vault:v1:")
            .unwrap(),
    );
    UnparsedPublicKey::new(&signature::ED25519, &pk)
        .verify(b"sign me", &sig)
        .unwrap();
    let pk = t
        .data(Read, "transit/export/public-key/s-rsa-2048", json!({}))
        .await;
    let der = public_key_der(pk["keys"]["1"].as_str().unwrap());
    let sig = t
        .data(
            Update,
            "transit/sign/s-rsa-2048",
            json!({"input": input, "signature_algorithm": "pkcs1v15"}),
        )
        .await;
    let sig = unb64(
        sig["signature"]
            .as_str()
            .unwrap()
            .strip_prefix("vault:v1:")
            .unwrap(),
    );
    let parsed = signature::ParsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &der);
    parsed.unwrap().verify_sig(b"sign me", &sig).unwrap();
    // Prehashed input.
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"sign me");
    let d = t
        .data(
            Update,
            "transit/sign/s-ecdsa-p256",
            json!({"input": b64(digest.as_ref()), "prehashed": true}),
        )
        .await;
    let v = t
        .data(
            Update,
            "transit/verify/s-ecdsa-p256",
            json!({"input": input, "signature": d["signature"]}),
        )
        .await;
    assert_eq!(v["valid"], true);
    // Batch signing.
    let d = t
        .data(
            Update,
            "transit/sign/s-ed25519",
            json!({"batch_input": [{"input": input}, {"input": b64(b"two")}]}),
        )
        .await;
    let r = d["batch_results"].as_array().unwrap();
    let d = t
        .data(
            Update,
            "transit/verify/s-ed25519",
            json!({"batch_input": [
            {"input": input, "signature": r[0]["signature"]},
            {"input": input, "signature": r[1]["signature"]}]}),
        )
        .await;
    assert_eq!(d["batch_results"][0]["valid"], true);
    assert_eq!(d["batch_results"][1]["valid"], false);
    // Symmetric keys do not sign.
    t.ok(Update, "transit/keys/sym", json!({})).await;
    let e = t
        .err(Update, "transit/sign/sym", json!({"input": input}))
        .await;
    assert!(e.contains("does not support signing"), "{e}");
}

#[tokio::test]
async fn hmac_hash_random_and_datakeys() {
    let t = setup().await;
    t.ok(
        Update,
        "transit/keys/h",
        json!({"type": "hmac", "key_size": 64, "exportable": true}),
    )
    .await;
    let d = t
        .data(
            Update,
            "transit/hmac/h/sha2-512",
            json!({"input": b64(b"m")}),
        )
        .await;
    let mac = d["hmac"].as_str().unwrap().to_owned();
    let key = unb64(
        t.data(Read, "transit/export/hmac-key/h/1", json!({})).await["keys"]["1"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(key.len(), 64);
    let want = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA512, &key),
        b"m",
    );
    assert_eq!(mac, format!("vault:v1:{}", b64(want.as_ref())));
    let v = t
        .data(
            Update,
            "transit/verify/h/sha2-512",
            json!({"input": b64(b"m"), "hmac": mac}),
        )
        .await;
    assert_eq!(v["valid"], true);
    let d = t
        .data(
            Update,
            "transit/hash/sha2-256",
            json!({"input": b64(b"hello")}),
        )
        .await;
    assert_eq!(
        d["sum"],
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    let d = t
        .data(Update, "transit/random/16", json!({"format": "hex"}))
        .await;
    assert_eq!(d["random_bytes"].as_str().unwrap().len(), 32);
    t.ok(Update, "transit/keys/dk", json!({})).await;
    let d = t
        .data(Update, "transit/datakey/plaintext/dk", json!({"bits": 512}))
        .await;
    let pt = unb64(d["plaintext"].as_str().unwrap());
    assert_eq!(pt.len(), 64);
    assert_eq!(
        t.decrypt("dk", d["ciphertext"].as_str().unwrap(), json!({}))
            .await,
        pt
    );
    let d = t
        .data(Update, "transit/datakey/wrapped/dk", json!({}))
        .await;
    assert!(d.get("plaintext").is_none());
    t.err(Update, "transit/datakey/other/dk", json!({})).await;
}

#[tokio::test]
async fn export_backup_and_restore() {
    let t = setup().await;
    let e = t.err(Read, "transit/backup/none", json!({})).await;
    assert!(e.contains("not found"), "{e}");
    for ty in ["aes256-gcm96", "ed25519", "ecdsa-p384", "rsa-2048", "hmac"] {
        let name = format!("bk-{ty}");
        t.ok(Update, &format!("transit/keys/{name}"), json!({"type": ty}))
            .await;
        let e = t
            .err(
                Read,
                &format!("transit/export/signing-key/{name}"),
                json!({}),
            )
            .await;
        assert!(
            e.contains("not exportable") || e.contains("not supported"),
            "{e}"
        );
        let e = t
            .err(Read, &format!("transit/backup/{name}"), json!({}))
            .await;
        assert!(e.contains("disallowed"), "{e}");
        t.ok(
            Update,
            &format!("transit/keys/{name}/config"),
            json!({"exportable": true, "allow_plaintext_backup": true}),
        )
        .await;
        t.ok(Update, &format!("transit/keys/{name}/rotate"), json!({}))
            .await;
        let backup = t
            .data(Read, &format!("transit/backup/{name}"), json!({}))
            .await["backup"]
            .as_str()
            .unwrap()
            .to_owned();
        let text = String::from_utf8(unb64(&backup)).unwrap();
        assert!(text.contains("\"archived_keys\""), "{text}");
        t.ok(Update, "transit/restore/copy", json!({"backup": backup}))
            .await;
        let e = t
            .err(Update, "transit/restore/copy", json!({"backup": backup}))
            .await;
        assert!(e.contains("already exists"), "{e}");
        // The copy has the same material.
        let (a, b) = match ty {
            "aes256-gcm96" => ("encryption-key", "encryption-key"),
            "hmac" => ("hmac-key", "hmac-key"),
            _ => ("signing-key", "signing-key"),
        };
        let orig = t
            .data(Read, &format!("transit/export/{a}/{name}"), json!({}))
            .await;
        let copy = t
            .data(Read, &format!("transit/export/{b}/copy"), json!({}))
            .await;
        assert_eq!(orig["keys"], copy["keys"], "{ty}");
        if ty == "aes256-gcm96" {
            let ct = t.encrypt(&name, b"moved", json!({})).await;
            assert_eq!(t.decrypt("copy", &ct, json!({})).await, b"moved");
        }
        t.ok(
            Update,
            "transit/keys/copy/config",
            json!({"deletion_allowed": true}),
        )
        .await;
        t.ok(Delete, "transit/keys/copy", json!({})).await;
    }
    let e = t
        .err(Update, "transit/restore", json!({"backup": "bm90IGpzb24="}))
        .await;
    assert!(e.contains("invalid backup"), "{e}");
}

#[tokio::test]
async fn byok_import_through_the_wrapping_key() {
    use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrapPadded};
    use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
    let t = setup().await;
    let pem = t.data(Read, "transit/wrapping_key", json!({})).await["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let again = t.data(Read, "transit/wrapping_key", json!({})).await;
    assert_eq!(again["public_key"], json!(pem));
    let spki = public_key_der(&pem);
    let target = [7u8; 32];
    let ephemeral = [9u8; 32];
    let oaep = OaepPublicEncryptingKey::new(PublicEncryptingKey::from_der(&spki).unwrap()).unwrap();
    let mut wrapped_key = vec![0u8; oaep.ciphertext_size()];
    let wk = oaep
        .encrypt(&OAEP_SHA256_MGF1SHA256, &ephemeral, &mut wrapped_key, None)
        .unwrap()
        .to_vec();
    let mut out = vec![0u8; 64];
    let kwp = AesKek::new(&AES_256, &ephemeral)
        .unwrap()
        .wrap_with_padding(&target, &mut out)
        .unwrap()
        .to_vec();
    let ct = b64(&[wk, kwp].concat());
    t.ok(
        Update,
        "transit/keys/byok/import",
        json!({"ciphertext": ct, "type": "aes256-gcm96", "exportable": true}),
    )
    .await;
    let d = t
        .data(Read, "transit/export/encryption-key/byok/1", json!({}))
        .await;
    assert_eq!(unb64(d["keys"]["1"].as_str().unwrap()), target);
    assert_eq!(
        t.data(Read, "transit/keys/byok", json!({})).await["imported_key"],
        true
    );
    let e = t.err(Update, "transit/keys/byok/rotate", json!({})).await;
    assert!(e.contains("rotation"), "{e}");
    let e = t
        .err(
            Update,
            "transit/keys/bad/import",
            json!({"ciphertext": b64(&[1u8; 600])}),
        )
        .await;
    assert!(e.contains("unwrap"), "{e}");
}

#[tokio::test]
async fn automatic_rotation_runs_from_periodic() {
    let t = setup().await;
    t.ok(
        Update,
        "transit/keys/auto",
        json!({"auto_rotate_period": "1h"}),
    )
    .await;
    t.ok(Update, "transit/keys/manual", json!({})).await;
    t.core.periodic_tick(T0 + 60).await.unwrap();
    assert_eq!(
        t.data(Read, "transit/keys/auto", json!({})).await["latest_version"],
        1
    );
    t.clock.advance(Duration::from_secs(3601));
    t.core.periodic_tick(T0 + 3601).await.unwrap();
    assert_eq!(
        t.data(Read, "transit/keys/auto", json!({})).await["latest_version"],
        2
    );
    assert_eq!(
        t.data(Read, "transit/keys/manual", json!({})).await["latest_version"],
        1
    );
    t.core.periodic_tick(T0 + 3700).await.unwrap();
    assert_eq!(
        t.data(Read, "transit/keys/auto", json!({})).await["latest_version"],
        2
    );
}

/// `transit/hash` with the algorithm in the body (or none) rather than in the URL: the
/// handler once asked the path table for a field that path did not declare, which panics in
/// debug builds (found by the `transit` fuzz target, issue 12).
#[tokio::test]
async fn hash_without_an_algorithm_in_the_url() {
    let t = setup().await;
    let d = t
        .data(Update, "transit/hash", json!({"input": b64(b"hello")}))
        .await;
    assert_eq!(
        d["sum"],
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    let d = t
        .data(
            Update,
            "transit/hash",
            json!({"input": b64(b"hello"), "algorithm": "sha2-512", "format": "base64"}),
        )
        .await;
    assert_eq!(d["sum"].as_str().unwrap().len(), 88);
}

#[tokio::test]
async fn help_and_openapi_cover_the_paths() {
    let t = setup().await;
    let r = t.ok(Operation::Help, "transit/encrypt/x", json!({})).await;
    let d = r.response.unwrap().data.unwrap();
    assert!(d["help"].as_str().unwrap().contains("plaintext"));
}

/// `random` without a byte count gives the documented 32 bytes: the count's field was read as
/// sent (0) when it was not, so every `random` and `random/:source` without `bytes` was a 400.
#[tokio::test]
async fn random_without_a_byte_count_gives_32_bytes() {
    let t = setup().await;
    for path in [
        "transit/random",
        "transit/random/platform",
        "transit/random/all",
    ] {
        let d = t.data(Update, path, json!({})).await;
        assert_eq!(
            unb64(d["random_bytes"].as_str().unwrap()).len(),
            32,
            "{path}"
        );
    }
    let d = t
        .data(Update, "transit/random", json!({"format": "hex"}))
        .await;
    assert_eq!(d["random_bytes"].as_str().unwrap().len(), 64);
    // A count that is sent is still checked, from the body or the URL.
    for (path, body) in [
        ("transit/random", json!({"bytes": 0})),
        ("transit/random", json!({"bytes": -1})),
        ("transit/random/seal", json!({"bytes": 131073})),
        ("transit/random/0", json!({})),
    ] {
        let e = t.err(Update, path, body).await;
        assert!(
            e.contains("bytes must be between 1 and 131072"),
            "{path}: {e}"
        );
    }
    let d = t
        .data(Update, "transit/random/seal/8", json!({"bytes": 64}))
        .await;
    assert_eq!(unb64(d["random_bytes"].as_str().unwrap()).len(), 8);
    let d = t
        .data(
            Update,
            "transit/random",
            json!({"bytes": 16, "source": "all"}),
        )
        .await;
    assert_eq!(unb64(d["random_bytes"].as_str().unwrap()).len(), 16);
}

/// A single rewrap of ciphertext bound to associated data: the data is used to decrypt and to
/// encrypt again, and is a declared field (it used to be used and reported as ignored).
#[tokio::test]
async fn rewrap_of_one_item_keeps_its_associated_data() {
    let t = setup().await;
    t.ok(Update, "transit/keys/rw", json!({})).await;
    let aad = json!({"associated_data": b64(b"row-7")});
    let ct = t.encrypt("rw", b"secret", aad.clone()).await;
    t.ok(Update, "transit/keys/rw/rotate", json!({})).await;
    let r = t
        .ok(
            Update,
            "transit/rewrap/rw",
            json!({"ciphertext": ct, "associated_data": b64(b"row-7")}),
        )
        .await
        .response
        .unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let again = r.data.unwrap()["ciphertext"].as_str().unwrap().to_owned();
    assert!(again.starts_with("vault:v2:"), "{again}");
    assert_eq!(t.decrypt("rw", &again, aad).await, b"secret");
    t.err(Update, "transit/decrypt/rw", json!({"ciphertext": again}))
        .await;
    // Without it, the rewrap cannot decrypt.
    t.err(Update, "transit/rewrap/rw", json!({"ciphertext": ct}))
        .await;
}

/// The fields of a single request and of a batch item are read the same way: defaults when
/// absent, the field named in errors, the item's reference echoed.
#[tokio::test]
async fn single_requests_and_batch_items_read_the_same_fields() {
    let t = setup().await;
    t.ok(Update, "transit/keys/s", json!({})).await;
    t.ok(Update, "transit/keys/s/rotate", json!({})).await;
    // key_version picks the version, in a single request and in an item.
    let d = t
        .data(
            Update,
            "transit/encrypt/s",
            json!({"plaintext": b64(b"a"), "key_version": 1}),
        )
        .await;
    assert!(d["ciphertext"].as_str().unwrap().starts_with("vault:v1:"));
    let (status, body) = t
        .batch_failure(
            "transit/encrypt/s",
            json!({"batch_input": [
                {"plaintext": b64(b"a"), "key_version": "1", "reference": "one"},
                {"plaintext": b64(b"a"), "key_version": "x", "reference": "bad"},
                {"plaintext": "%%", "key_version": "x"},
                {"plaintext": b64(b"a"), "context": "%%"},
            ]}),
        )
        .await;
    assert_eq!(status, 400);
    let r = body["data"]["batch_results"].as_array().unwrap();
    assert!(
        r[0]["ciphertext"]
            .as_str()
            .unwrap()
            .starts_with("vault:v1:")
    );
    assert_eq!(r[0]["reference"], "one");
    assert_eq!(r[1]["error"], "key_version must be an integer");
    assert_eq!(r[1]["reference"], "bad");
    // The plaintext is decoded before key_version is looked at, as it always was.
    assert_eq!(r[2]["error"], "failed to base64-decode plaintext");
    assert!(r[2].get("reference").is_none());
    assert_eq!(r[3]["error"], "failed to base64-decode context");
    let e = t
        .err(
            Update,
            "transit/encrypt/s",
            json!({"plaintext": b64(b"a"), "nonce": "%%"}),
        )
        .await;
    assert!(e.contains("failed to base64-decode nonce"), "{e}");
    let e = t.err(Update, "transit/encrypt/s", json!({})).await;
    assert!(e.contains("missing plaintext to encrypt"), "{e}");
    let e = t.err(Update, "transit/decrypt/s", json!({})).await;
    assert!(e.contains("missing ciphertext to decrypt"), "{e}");
    let e = t
        .err(Update, "transit/encrypt/s", json!({"batch_input": [1]}))
        .await;
    assert!(e.contains("batch_input item 0 is not an object"), "{e}");
    // Verify reads signature or hmac from the request or from each item.
    t.ok(Update, "transit/keys/sg", json!({"type": "ed25519"}))
        .await;
    let sig = t
        .data(Update, "transit/sign/sg", json!({"input": b64(b"m")}))
        .await["signature"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = t
        .data(
            Update,
            "transit/verify/sg",
            json!({"input": b64(b"m"), "signature": sig}),
        )
        .await;
    assert_eq!(d["valid"], true);
    let (status, body) = t
        .batch_failure(
            "transit/verify/sg",
            json!({"batch_input": [
                {"input": b64(b"m"), "signature": sig, "reference": "ok"},
                {"input": b64(b"m"), "reference": "none"},
            ], "partial_failure_response_code": 207}),
        )
        .await;
    assert_eq!(status, 207);
    let r = body["data"]["batch_results"].as_array().unwrap();
    assert_eq!(r[0]["valid"], true);
    assert_eq!(r[0]["reference"], "ok");
    assert_eq!(r[1]["error"], "missing signature or hmac to verify");
    assert_eq!(r[1]["reference"], "none");
}

/// `keys/:name/config` changes only the settings sent; numbers out of range are refused.
#[tokio::test]
async fn key_config_changes_only_what_is_sent() {
    let t = setup().await;
    t.ok(Update, "transit/keys/cfg", json!({})).await;
    t.ok(Update, "transit/keys/cfg/rotate", json!({})).await;
    t.ok(
        Update,
        "transit/keys/cfg/config",
        json!({"deletion_allowed": true, "exportable": true, "auto_rotate_period": "2h"}),
    )
    .await;
    let before = t.data(Read, "transit/keys/cfg", json!({})).await;
    assert_eq!(before["deletion_allowed"], true);
    assert_eq!(before["exportable"], true);
    t.ok(
        Update,
        "transit/keys/cfg/config",
        json!({"min_decryption_version": 2}),
    )
    .await;
    let mut after = t.data(Read, "transit/keys/cfg", json!({})).await;
    assert_eq!(after["min_decryption_version"], 2);
    after.insert(
        "min_decryption_version".into(),
        before["min_decryption_version"].clone(),
    );
    assert_eq!(after, before);
    // Sent as false, a setting does change.
    t.ok(
        Update,
        "transit/keys/cfg/config",
        json!({"deletion_allowed": false}),
    )
    .await;
    let d = t.data(Read, "transit/keys/cfg", json!({})).await;
    assert_eq!(d["deletion_allowed"], false);
    assert_eq!(d["exportable"], true);
    for (body, want) in [
        (json!({"min_decryption_version": -1}), "cannot be negative"),
        (json!({"min_encryption_version": -1}), "cannot be negative"),
        (
            json!({"min_decryption_version": 1_i64 << 40}),
            "invalid min_decryption_version",
        ),
        (
            json!({"min_encryption_version": 3}),
            "latest key version is 2",
        ),
        (
            json!({"exportable": false}),
            "cannot be made non-exportable",
        ),
    ] {
        let e = t.err(Update, "transit/keys/cfg/config", body.clone()).await;
        assert!(e.contains(want), "{body}: {e}");
    }
    let e = t
        .err(Update, "transit/keys/k2", json!({"key_size": 64}))
        .await;
    assert!(e.contains("key_size is only valid for hmac keys"), "{e}");
    t.ok(Update, "transit/keys/k3", json!({"key_size": 0}))
        .await;
    let e = t
        .err(
            Update,
            "transit/keys/h2",
            json!({"type": "hmac", "key_size": -1}),
        )
        .await;
    assert!(e.contains("invalid key_size"), "{e}");
}

/// Creating a key that exists leaves it as it is (its type and versions) and, as Vault does,
/// says so in a warning next to the key's description.
#[tokio::test]
async fn creating_an_existing_key_warns_and_changes_nothing() {
    let t = setup().await;
    let r = t
        .ok(Update, "transit/keys/k", json!({}))
        .await
        .response
        .unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    t.ok(Update, "transit/keys/k/rotate", json!({})).await;
    let r = t
        .ok(Update, "transit/keys/k", json!({"type": "ed25519"}))
        .await
        .response
        .unwrap();
    assert_eq!(r.warnings, vec!["key k already existed".to_string()]);
    let d = r.data.unwrap();
    assert_eq!(d["type"], "aes256-gcm96");
    assert_eq!(d["latest_version"], 2);
}
