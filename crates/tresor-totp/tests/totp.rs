//! The TOTP engine in-process, through a real dev core on in-memory storage and a clock the
//! tests move: generated and imported keys, codes generated and validated (RFC 6238's own
//! vectors), a code validating once (also when 20 validations race), skew, and bad input
//! that stores nothing.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Map, Value, json};
use tresor_core::{Core, CoreConfig, CoreError, CoreRequest};
use tresor_physical::InmemBackend;
use tresor_sdk::Operation::{self, Delete, List, Read, Update};
use tresor_sdk::clock::ManualClock;

/// RFC 6238's SHA-1 secret, "12345678901234567890", in base32.
const RFC_KEY: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

struct T {
    core: Core,
    clock: Arc<ManualClock>,
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

async fn setup(t0: i64) -> T {
    let clock = Arc::new(ManualClock::at(t0));
    let cfg = CoreConfig {
        clock: clock.clone(),
        ..Default::default()
    };
    let mut core = Core::new(Arc::new(InmemBackend::new()), cfg);
    let c = clock.clone();
    core.register_engine(
        "totp",
        Arc::new(move |_| Ok(tresor_totp::backend_with_clock(c.clone()))),
    );
    core.init_dev(Some("root".into())).await.expect("dev init");
    let t = T { core, clock };
    t.data(Update, "sys/mounts/totp", json!({"type": "totp"}))
        .await;
    t
}

impl T {
    async fn req(
        &self,
        op: Operation,
        path: &str,
        data: Value,
    ) -> Result<Option<Map<String, Value>>, CoreError> {
        self.core
            .handle(CoreRequest::new(op, path, obj(data), Some("root")))
            .await
            .map(|r| r.response.and_then(|r| r.data))
    }

    async fn data(&self, op: Operation, path: &str, data: Value) -> Map<String, Value> {
        match self.req(op, path, data).await {
            Ok(d) => d.unwrap_or_default(),
            Err(e) => panic!("{op:?} {path} failed: {e}"),
        }
    }

    async fn err(&self, op: Operation, path: &str, data: Value) -> String {
        match self.req(op, path, data).await {
            Ok(d) => panic!("{op:?} {path} succeeded: {d:?}"),
            Err(CoreError::InvalidRequest(m)) => m,
            Err(e) => panic!("{op:?} {path}: not a 400: {e:?}"),
        }
    }

    async fn validate(&self, name: &str, code: &str) -> Result<bool, String> {
        match self
            .req(Update, &format!("totp/code/{name}"), json!({"code": code}))
            .await
        {
            Ok(d) => Ok(d.unwrap()["valid"].as_bool().unwrap()),
            Err(CoreError::InvalidRequest(m)) => Err(m),
            Err(e) => panic!("validate: {e:?}"),
        }
    }
}

#[tokio::test]
async fn rfc6238_vectors_through_the_api_and_a_code_validates_once() {
    // RFC 6238 Appendix B: T = 1111111109 gives 07081804 (8 digits, SHA-1).
    let t = setup(1_111_111_109).await;
    t.data(
        Update,
        "totp/keys/rfc",
        json!({"key": RFC_KEY, "digits": 8}),
    )
    .await;
    let d = t.data(Read, "totp/code/rfc", json!({})).await;
    assert_eq!(d["code"], "07081804");
    assert_eq!(t.validate("rfc", "07081804").await, Ok(true));
    assert_eq!(
        t.validate("rfc", "07081804").await,
        Err("code already used; wait until the next time period".into())
    );
    assert_eq!(t.validate("rfc", "12345678").await, Ok(false));
    assert_eq!(
        t.validate("rfc", "123").await,
        Err("invalid number of digits for the code".into())
    );
    // The previous step's code is accepted (skew 1) ...
    t.clock.advance(Duration::from_secs(30));
    assert_eq!(
        t.validate("rfc", "07081804").await.unwrap_err(),
        "code already used; wait until the next time period"
    );
    // ... and once the code can no longer validate, it is simply wrong.
    t.clock.advance(Duration::from_secs(60));
    assert_eq!(t.validate("rfc", "07081804").await, Ok(false));
}

#[tokio::test]
async fn racing_validations_of_one_code_yield_exactly_one_valid() {
    let t = Arc::new(setup(1_800_000_000).await);
    t.data(Update, "totp/keys/k", json!({"key": "JBSWY3DPEHPK3PXP"}))
        .await;
    let code = t.data(Read, "totp/code/k", json!({})).await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let t = t.clone();
        let code = code.clone();
        tasks.push(tokio::spawn(async move { t.validate("k", &code).await }));
    }
    let mut valid = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(true) => valid += 1,
            Ok(false) => panic!("a right code was called invalid"),
            Err(e) => assert!(e.contains("already used"), "{e}"),
        }
    }
    assert_eq!(valid, 1);
}

#[tokio::test]
async fn generated_keys_come_with_url_and_barcode_and_import_elsewhere() {
    let t = setup(1_800_000_000).await;
    let d = t
        .data(
            Update,
            "totp/keys/gen",
            json!({"generate": true, "issuer": "Acme", "account_name": "alice@acme.test", "qr_size": 120}),
        )
        .await;
    let url = d["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with("otpauth://totp/Acme:alice@acme.test?"),
        "{url}"
    );
    let png = base64::engine::general_purpose::STANDARD
        .decode(d["barcode"].as_str().unwrap())
        .unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let r = t.data(Read, "totp/keys/gen", json!({})).await;
    assert_eq!(
        Value::Object(r),
        json!({"account_name": "alice@acme.test", "algorithm": "SHA1", "digits": 6, "issuer": "Acme", "period": 30})
    );

    // The URL imports as another key that makes the same codes.
    t.data(Update, "totp/keys/copy", json!({"url": url})).await;
    let a = t.data(Read, "totp/code/gen", json!({})).await;
    let b = t.data(Read, "totp/code/copy", json!({})).await;
    assert_eq!(a["code"], b["code"]);

    // Not exported: nothing comes back.
    let d = t
        .req(
            Update,
            "totp/keys/quiet",
            json!({"generate": true, "issuer": "A", "account_name": "b", "exported": false}),
        )
        .await
        .unwrap();
    assert!(d.is_none());

    // An imported URL's settings are kept.
    t.data(
        Update,
        "totp/keys/ex",
        json!({"url": "otpauth://totp/Ex:al%40ex.com?secret=JBSWY3DPEHPK3PXP&issuer=Ex&algorithm=SHA256&digits=8&period=60"}),
    )
    .await;
    let r = t.data(Read, "totp/keys/ex", json!({})).await;
    assert_eq!(
        Value::Object(r),
        json!({"account_name": "al@ex.com", "algorithm": "SHA256", "digits": 8, "issuer": "Ex", "period": 60})
    );

    let list = t.data(List, "totp/keys", json!({})).await;
    assert_eq!(list["keys"], json!(["copy", "ex", "gen", "quiet"]));
    t.data(Delete, "totp/keys/copy", json!({})).await;
    assert_eq!(
        t.err(Read, "totp/code/copy", json!({})).await,
        "unknown key: copy"
    );
}

#[tokio::test]
async fn bad_input_is_refused_and_stores_nothing() {
    let t = setup(1_800_000_000).await;
    for (body, want) in [
        (
            json!({"key": "!!!"}),
            "invalid key value: illegal base32 data at input byte 0",
        ),
        (json!({}), "the key value is required"),
        (
            json!({"generate": true, "issuer": "x"}),
            "the account_name value is required for generated keys",
        ),
        (
            json!({"generate": true, "account_name": "y"}),
            "the issuer value is required for generated keys",
        ),
        (
            json!({"generate": true, "issuer": "x", "account_name": "y", "digits": 7}),
            "the digits value can only be 6 or 8",
        ),
        (
            json!({"generate": true, "issuer": "x", "account_name": "y", "algorithm": "MD5"}),
            "the algorithm value is not valid",
        ),
        (
            json!({"key": "JBSWY3DPEHPK3PXP", "skew": 2}),
            "the skew value must be 0 or 1",
        ),
        (
            json!({"url": "otpauth://hotp/x?secret=JBSWY3DPEHPK3PXP"}),
            "only totp",
        ),
        (
            json!({"url": "otpauth://totp/x?secret=1111"}),
            "invalid key value",
        ),
    ] {
        let e = t.err(Update, "totp/keys/bad", body).await;
        assert!(e.contains(want), "{e} (wanted {want})");
    }
    assert!(
        t.req(Read, "totp/keys/bad", json!({}))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        t.err(Update, "totp/code/nokey", json!({"code": "123456"}))
            .await,
        "unknown key: nokey"
    );
}
