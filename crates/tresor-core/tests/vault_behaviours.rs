//! Issue 12, "Vault behaviours that differ today": each test pins one behaviour of the core
//! and the built-in backends (`sys/`, `auth/token/`, `cubbyhole/`) to what Vault does.

mod common;

use common::dev_core;
use serde_json::{Value, json};
use tresor_core::CoreError;
use tresor_sdk::Operation;

/// A cubbyhole write takes arbitrary keys: it answers with nothing (a 204 over HTTP) and no
/// "ignored parameters" warning, as in Vault, and the data reads back whole.
#[tokio::test]
async fn cubbyhole_writes_answer_nothing_and_warn_about_nothing() {
    let t = dev_core().await;
    let r = t
        .ok(
            Operation::Update,
            "cubbyhole/app",
            json!({"user": "alice", "password": "s3cret", "n": 3}),
            &t.root,
        )
        .await;
    assert!(
        r.response.is_none(),
        "a cubbyhole write has no body: {:?}",
        r.response
    );
    let create = t
        .ok(
            Operation::Create,
            "cubbyhole/other",
            json!({"anything": true}),
            &t.root,
        )
        .await;
    assert!(create.response.is_none(), "{:?}", create.response);
    let back = t
        .data(Operation::Read, "cubbyhole/app", Value::Null, &t.root)
        .await;
    assert_eq!(
        Value::Object(back),
        json!({"user": "alice", "password": "s3cret", "n": 3})
    );
}

/// The error a request ended in, for tests that expect one.
pub fn err_of<T: std::fmt::Debug>(r: Result<T, CoreError>) -> CoreError {
    r.expect_err("the request must fail")
}
