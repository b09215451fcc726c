//! `batch_input`: reading the items of a batch request, and answering with per-item results
//! the way Vault does (a batch with failed items answers 400, or the caller's
//! `partial_failure_response_code` when some items succeeded, with every result in the body).

use std::borrow::Cow;

use serde_json::{Map, Value, json};
use tresor_sdk::{RawResponse, Request, Response, Result};
use zeroize::Zeroizing;

use crate::util::{b64, bad, unb64, unb64_secret};

/// One item: its fields as sent.
pub(crate) type Item = Map<String, Value>;

/// The batch items, or `None` for a single-item request, taken out of the request (the field
/// is declared `in_request`, so nothing copied them before). A JSON string is accepted too
/// (the CLI's `batch_input=@file.json`).
pub(crate) fn items(req: &mut Request) -> Result<Option<Vec<Item>>> {
    let Some(v) = req.data.remove("batch_input") else {
        return Ok(None);
    };
    let v = match v {
        Value::Null => return Ok(None),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => serde_json::from_str::<Value>(&s)
            .map_err(|e| bad(format!("batch_input is not a JSON list: {e}")))?,
        other => other,
    };
    let Value::Array(list) = v else {
        return Err(bad("batch_input must be a list of objects"));
    };
    if list.is_empty() {
        return Err(bad("missing batch input to process"));
    }
    list.into_iter()
        .enumerate()
        .map(|(i, x)| match x {
            Value::Object(m) => Ok(m),
            _ => Err(bad(format!("batch_input item {i} is not an object"))),
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// A string field of an item (numbers and booleans as their text), borrowed when it is a
/// string.
fn string<'a>(item: &'a Item, key: &str) -> Cow<'a, str> {
    match item.get(key) {
        Some(Value::String(s)) => Cow::Borrowed(s),
        Some(Value::Number(n)) => Cow::Owned(n.to_string()),
        Some(Value::Bool(b)) => Cow::Owned(b.to_string()),
        _ => Cow::Borrowed(""),
    }
}

/// An integer field of an item (0 when absent); the error (its text) names the field.
fn int(item: &Item, key: &str) -> std::result::Result<i64, String> {
    let not_int = || format!("{key} must be an integer");
    match item.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(not_int),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(0),
        Some(Value::String(s)) => s.trim().parse().map_err(|_| not_int()),
        Some(_) => Err(not_int()),
    }
}

/// The bytes of the base64 field `key` (empty when absent); the error names the field.
pub(crate) fn bytes(text: &str, key: &str) -> Result<Vec<u8>> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    unb64(text).ok_or_else(|| bad(format!("failed to base64-decode {key}")))
}

/// As [`bytes`], for a secret (zeroed when dropped).
pub(crate) fn secret_bytes(text: &str, key: &str) -> Result<Zeroizing<Vec<u8>>> {
    if text.is_empty() {
        return Ok(Zeroizing::new(Vec::new()));
    }
    unb64_secret(text).ok_or_else(|| bad(format!("failed to base64-decode {key}")))
}

/// One item of `encrypt/`, `decrypt/`, `rewrap/` (or `datakey/`'s one encryption): a batch
/// item's fields, or a single request's ([`crate::inputs`]), as sent. Text is borrowed; base64
/// is decoded (and `key_version`'s error reported) where it is used, in the order it always
/// was, so an item with two bad fields names the same one as before.
pub(crate) struct CryptItem<'a> {
    pub plaintext: Cow<'a, str>,
    pub ciphertext: Cow<'a, str>,
    pub context: Cow<'a, str>,
    pub nonce: Cow<'a, str>,
    pub associated_data: Cow<'a, str>,
    /// 0 (the latest) when absent; an error naming the field when not an integer.
    pub key_version: std::result::Result<i64, String>,
    /// Echoed in the item's result.
    pub reference: Cow<'a, str>,
}

impl<'a> CryptItem<'a> {
    /// A batch item (an object of `batch_input`).
    pub(crate) fn from_json(item: &'a Item) -> Self {
        CryptItem {
            plaintext: string(item, "plaintext"),
            ciphertext: string(item, "ciphertext"),
            context: string(item, "context"),
            nonce: string(item, "nonce"),
            associated_data: string(item, "associated_data"),
            key_version: int(item, "key_version"),
            reference: string(item, "reference"),
        }
    }

    /// An item with every field empty, for a single request to fill in.
    pub(crate) fn empty() -> Self {
        CryptItem {
            plaintext: Cow::Borrowed(""),
            ciphertext: Cow::Borrowed(""),
            context: Cow::Borrowed(""),
            nonce: Cow::Borrowed(""),
            associated_data: Cow::Borrowed(""),
            key_version: Ok(0),
            reference: Cow::Borrowed(""),
        }
    }
}

/// One item of `sign/`, `verify/` or `hmac/`: a batch item's fields, or a single request's.
pub(crate) struct SignItem<'a> {
    pub input: Cow<'a, str>,
    pub context: Cow<'a, str>,
    pub signature: Cow<'a, str>,
    pub hmac: Cow<'a, str>,
    /// Echoed in the item's result.
    pub reference: Cow<'a, str>,
}

impl<'a> SignItem<'a> {
    /// A batch item (an object of `batch_input`).
    pub(crate) fn from_json(item: &'a Item) -> Self {
        SignItem {
            input: string(item, "input"),
            context: string(item, "context"),
            signature: string(item, "signature"),
            hmac: string(item, "hmac"),
            reference: string(item, "reference"),
        }
    }

    /// An item with every field empty, for a single request to fill in.
    pub(crate) fn empty() -> Self {
        SignItem {
            input: Cow::Borrowed(""),
            context: Cow::Borrowed(""),
            signature: Cow::Borrowed(""),
            hmac: Cow::Borrowed(""),
            reference: Cow::Borrowed(""),
        }
    }
}

/// One result of a batch: its fields, or the item's error; with the item's `reference`.
pub(crate) fn result(reference: &str, r: Result<Map<String, Value>>) -> (Value, bool) {
    let (mut m, failed) = match r {
        Ok(m) => (m, false),
        Err(e) => {
            let mut m = Map::new();
            m.insert("error".into(), json!(e.to_string()));
            (m, true)
        }
    };
    if !reference.is_empty() {
        m.insert("reference".into(), Value::String(reference.to_owned()));
    }
    (Value::Object(m), failed)
}

/// The answer to a batch: `batch_results`; with failed items, Vault's 400 (or the caller's
/// `partial_failure_response_code` when some succeeded) carrying all results.
pub(crate) fn respond(
    results: Vec<Value>,
    failures: usize,
    partial_code: i64,
    mount_type: &str,
) -> Result<Option<Response>> {
    let total = results.len();
    let mut data = Map::new();
    data.insert("batch_results".into(), Value::Array(results));
    if failures == 0 {
        return Ok(Some(Response::data(data)));
    }
    let mut status: u16 = 400;
    let mut warnings = Value::Null;
    if failures < total && partial_code != 0 {
        match u16::try_from(partial_code) {
            Ok(c) if (1..=599).contains(&c) => status = c,
            _ => {
                warnings = json!([format!(
                    "invalid HTTP response code override from partial_failure_response_code, reverting to {status}"
                )]);
            }
        }
    }
    let id = crate::util::random(16)?;
    let request_id = format!(
        "{}-{}-{}-{}-{}",
        hex::encode(&id[0..4]),
        hex::encode(&id[4..6]),
        hex::encode(&id[6..8]),
        hex::encode(&id[8..10]),
        hex::encode(&id[10..16])
    );
    let body = json!({
        "request_id": request_id,
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": data,
        "wrap_info": null,
        "warnings": warnings,
        "auth": null,
        "mount_type": mount_type,
    });
    Ok(Some(Response {
        raw: Some(RawResponse {
            headers: Vec::new(),
            status,
            content_type: "application/json".into(),
            body: serde_json::to_vec(&body).unwrap_or_default(),
        }),
        ..Default::default()
    }))
}

/// Base64 of secret bytes, for a response.
pub(crate) fn encode(bytes: &[u8]) -> String {
    b64(bytes)
}
