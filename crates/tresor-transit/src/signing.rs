//! `sign/`, `verify/` (signatures and HMACs), `hmac/`, `hash/`, `random/`.

use std::borrow::Cow;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use serde_json::{Map, Value, json};
use tresor_sdk::framework::Fields;
use tresor_sdk::{Request, Response, Result, Storage};

use crate::batch::{self, Item, SignItem};
use crate::crypto::{
    self, Hash, Salt, SignOpts, check_decrypt_version, encryption_version, split_versioned,
};
use crate::engine::{Engine, Key, mount_id};
use crate::inputs::{
    HashInput, HashUrlInput, HmacInput, KeyName, PartialInput, RandomInput, RandomOneInput,
    RandomUrlInput, SignInput, SignVersionInput, VerifyInput,
};
use crate::keytype::KeyType;
use crate::util::{b64, bad, internal};

/// The hash algorithm: the URL's, else the first of the body's fields that is not empty
/// (`hash_algorithm` before the deprecated `algorithm`), else sha2-256.
fn hash_name(url: &str, body: &[&str]) -> String {
    std::iter::once(url)
        .chain(body.iter().copied())
        .find(|s| !s.is_empty())
        .unwrap_or("sha2-256")
        .to_owned()
}

fn sign_opts(i: &SignInput) -> Result<SignOpts> {
    let hash = Hash::parse(&hash_name(
        &i.urlalgorithm,
        &[&i.hash_algorithm, &i.algorithm],
    ))?;
    let pss = match i.signature_algorithm.as_str() {
        "" | "pss" => true,
        "pkcs1v15" => false,
        other => return Err(bad(format!("unsupported signature algorithm {other}"))),
    };
    let jws = match i.marshaling_algorithm.as_str() {
        "" | "asn1" => false,
        "jws" => true,
        other => return Err(bad(format!("unsupported marshaling algorithm {other}"))),
    };
    let salt = match i.salt_length.as_str() {
        // Vault also takes Go's numeric spellings: 0 is rsa.PSSSaltLengthAuto and -1
        // rsa.PSSSaltLengthEqualsHash; another number is the exact length in bytes.
        "" | "auto" | "0" => Salt::Max,
        "hash" | "-1" => Salt::Digest,
        n => match n.parse::<u16>() {
            Ok(n) if usize::from(n) == hash.output_len() => Salt::Digest,
            Ok(n) => Salt::Exact(n),
            Err(_) => {
                return Err(bad(format!(
                    "invalid salt_length {n:?}: use auto (or 0), hash (or -1) or a length in bytes"
                )));
            }
        },
    };
    Ok(SignOpts {
        hash,
        prehashed: i.prehashed,
        pss,
        salt,
        jws,
    })
}

fn single_or_error(r: (Value, bool)) -> Result<Map<String, Value>> {
    let (v, failed) = r;
    let mut m = match v {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    if failed {
        let e = m
            .remove("error")
            .and_then(|e| e.as_str().map(str::to_owned))
            .unwrap_or_default();
        return Err(bad(e));
    }
    m.remove("reference");
    Ok(m)
}

fn answer(
    batch_items: bool,
    mut results: Vec<(Value, bool)>,
    partial_code: i64,
) -> Result<Option<Response>> {
    if !batch_items {
        let r = results.pop().unwrap_or((Value::Null, true));
        return Ok(Some(Response::data(single_or_error(r)?)));
    }
    let failures = results.iter().filter(|(_, e)| *e).count();
    batch::respond(
        results.into_iter().map(|(v, _)| v).collect(),
        failures,
        partial_code,
        "transit",
    )
}

async fn sign_item(
    k: &Key,
    s: &dyn Storage,
    item: &SignItem<'_>,
    version: u32,
    o: &SignOpts,
) -> Result<Map<String, Value>> {
    let input = batch::bytes(&item.input, "input")?;
    let context = batch::bytes(&item.context, "context")?;
    let v = k.version(s, version).await?;
    let sig = crypto::sign(&k.policy, k.kind, &v, &input, &context, o)?;
    let mut m = Map::new();
    m.insert("signature".into(), json!(sig));
    m.insert("key_version".into(), json!(version));
    Ok(m)
}

async fn verify_item(
    k: &Key,
    s: &dyn Storage,
    item: &SignItem<'_>,
    o: &SignOpts,
) -> Result<Map<String, Value>> {
    let input = batch::bytes(&item.input, "input")?;
    let context = batch::bytes(&item.context, "context")?;
    let (sig, mac) = (&item.signature, &item.hmac);
    let valid = match (sig.is_empty(), mac.is_empty()) {
        (false, false) => return Err(bad("provide one of 'signature' or 'hmac', not both")),
        (true, true) => return Err(bad("missing signature or hmac to verify")),
        (false, true) => {
            if !k.kind.supports_signing() {
                return Err(bad(format!(
                    "key type {} does not support verification",
                    k.kind.name()
                )));
            }
            let (n, body) = split_versioned(sig.trim(), "signature")?;
            check_decrypt_version(&k.policy, n)?;
            let bytes = crypto::signature_bytes(body, o.jws)?;
            let v = k.version(s, n).await?;
            crypto::verify(&k.policy, k.kind, &v, &input, &bytes, &context, o)?
        }
        (true, false) => {
            let (n, body) = split_versioned(mac.trim(), "hmac")?;
            check_decrypt_version(&k.policy, n)?;
            let given = crate::util::unb64(body)
                .ok_or_else(|| bad("invalid hmac: could not decode base64"))?;
            let v = k.version(s, n).await?;
            let key = hmac_key(k, &v);
            let want = o.hash.hmac(key, &input);
            verify_slices_are_equal(&want, &given).is_ok()
        }
    };
    let mut m = Map::new();
    m.insert("valid".into(), json!(valid));
    Ok(m)
}

fn hmac_key<'a>(k: &Key, v: &'a crate::key::Version) -> &'a [u8] {
    if k.kind == KeyType::Hmac {
        &v.key
    } else {
        &v.hmac_key
    }
}

/// The items of a request: its batch's, or the single item `single` makes of its fields.
fn sign_items<'a>(
    batch_items: &'a Option<Vec<Item>>,
    single: impl FnOnce() -> SignItem<'a>,
) -> Vec<SignItem<'a>> {
    match batch_items {
        Some(list) => list.iter().map(SignItem::from_json).collect(),
        None => vec![single()],
    }
}

/// Where `random/` takes the source and byte count from: the URL's segments first.
struct RandomArgs {
    url_source: Option<String>,
    url_bytes: Option<String>,
    bytes: Option<i64>,
    source: String,
    format: String,
}

const SOURCES: [&str; 3] = ["platform", "seal", "all"];

impl Engine {
    pub(crate) async fn sign(&self, mut req: Request, f: Fields) -> Result<Option<Response>> {
        let KeyName { name } = f.input();
        let input: SignInput = f.input();
        let batch_items = batch::items(&mut req)?;
        let s = &*req.storage;
        let key = self
            .existing(&mount_id(&req), s, &name, "signing key not found")
            .await?;
        if !key.kind.supports_signing() {
            return Err(bad(format!(
                "key type {} does not support signing",
                key.kind.name()
            )));
        }
        let o = sign_opts(&input)?;
        let SignVersionInput { key_version } = f.input();
        let version = encryption_version(&key.policy, key_version)?;
        let is_batch = batch_items.is_some();
        let items = sign_items(&batch_items, || SignItem {
            input: Cow::Borrowed(&input.input),
            context: Cow::Borrowed(&input.context),
            ..SignItem::empty()
        });
        let mut results = Vec::with_capacity(items.len());
        for item in &items {
            results.push(batch::result(
                &item.reference,
                sign_item(&key, s, item, version, &o).await,
            ));
        }
        answer(is_batch, results, input.partial_failure_response_code)
    }

    pub(crate) async fn verify(&self, mut req: Request, f: Fields) -> Result<Option<Response>> {
        let KeyName { name } = f.input();
        let input: SignInput = f.input();
        let given: VerifyInput = f.input();
        let batch_items = batch::items(&mut req)?;
        let s = &*req.storage;
        let key = self
            .existing(
                &mount_id(&req),
                s,
                &name,
                "signature verification key not found",
            )
            .await?;
        let o = sign_opts(&input)?;
        let is_batch = batch_items.is_some();
        let items = sign_items(&batch_items, || SignItem {
            input: Cow::Borrowed(&input.input),
            context: Cow::Borrowed(&input.context),
            signature: Cow::Borrowed(&given.signature),
            hmac: Cow::Borrowed(&given.hmac),
            ..SignItem::empty()
        });
        let mut results = Vec::with_capacity(items.len());
        for item in &items {
            results.push(batch::result(
                &item.reference,
                verify_item(&key, s, item, &o).await,
            ));
        }
        answer(is_batch, results, input.partial_failure_response_code)
    }

    pub(crate) async fn hmac(&self, mut req: Request, f: Fields) -> Result<Option<Response>> {
        let KeyName { name } = f.input();
        let input: HmacInput = f.input();
        let batch_items = batch::items(&mut req)?;
        let s = &*req.storage;
        let key = self
            .existing(&mount_id(&req), s, &name, "HMAC key not found")
            .await?;
        let hash = Hash::parse(&hash_name(&input.urlalgorithm, &[&input.algorithm]))?;
        let n = encryption_version(&key.policy, input.key_version)?;
        let v = key.version(s, n).await?;
        let is_batch = batch_items.is_some();
        let items = sign_items(&batch_items, || SignItem {
            input: Cow::Borrowed(&input.input),
            ..SignItem::empty()
        });
        let mut results = Vec::with_capacity(items.len());
        for item in &items {
            let r = batch::bytes(&item.input, "input").map(|input| {
                let mac = hash.hmac(hmac_key(&key, &v), &input);
                let mut m = Map::new();
                m.insert("hmac".into(), json!(crypto::format_versioned(n, &mac)));
                m
            });
            results.push(batch::result(&item.reference, r));
        }
        let PartialInput {
            partial_failure_response_code,
        } = f.input();
        answer(is_batch, results, partial_failure_response_code)
    }

    /// `hash/:urlalgorithm`.
    pub(crate) async fn hash_url(&self, _req: Request, f: Fields) -> Result<Option<Response>> {
        let i: HashUrlInput = f.input();
        hash(&i.urlalgorithm, &i.algorithm, &i.input, &i.format)
    }

    /// `hash` (the algorithm in the body, if any).
    pub(crate) async fn hash(&self, _req: Request, f: Fields) -> Result<Option<Response>> {
        let i: HashInput = f.input();
        hash(&i.urlalgorithm, &i.algorithm, &i.input, &i.format)
    }

    /// `random/:source/:urlbytes`.
    pub(crate) async fn random_url(&self, _req: Request, f: Fields) -> Result<Option<Response>> {
        let i: RandomUrlInput = f.input();
        random(RandomArgs {
            url_source: Some(i.source),
            url_bytes: Some(i.urlbytes),
            bytes: i.bytes,
            source: String::new(),
            format: i.format,
        })
    }

    /// `random/:source_or_bytes`.
    pub(crate) async fn random_one(&self, _req: Request, f: Fields) -> Result<Option<Response>> {
        let i: RandomOneInput = f.input();
        let (url_source, url_bytes) = if SOURCES.contains(&i.source_or_bytes.as_str()) {
            (Some(i.source_or_bytes), None)
        } else {
            (None, Some(i.source_or_bytes))
        };
        random(RandomArgs {
            url_source,
            url_bytes,
            bytes: i.bytes,
            source: i.source,
            format: i.format,
        })
    }

    /// `random`.
    pub(crate) async fn random(&self, _req: Request, f: Fields) -> Result<Option<Response>> {
        let i: RandomInput = f.input();
        random(RandomArgs {
            url_source: None,
            url_bytes: None,
            bytes: i.bytes,
            source: i.source,
            format: i.format,
        })
    }
}

/// `hash[/:urlalgorithm]`: the digest of the base64 `input`.
fn hash(url: &str, algorithm: &str, input: &str, format: &str) -> Result<Option<Response>> {
    let hash = match hash_name(url, &[algorithm]).as_str() {
        "sha1" => return Err(bad("unsupported algorithm sha1")),
        other => Hash::parse(other).map_err(|_| bad(format!("unsupported algorithm {other}")))?,
    };
    let input = crate::util::unb64(input).ok_or_else(|| bad("unable to decode input as base64"))?;
    let sum = hash.digest(&input);
    let out = match format {
        "" | "hex" => hex::encode(sum),
        "base64" => b64(&sum),
        other => {
            return Err(bad(format!(
                "unsupported encoding format {other}; must be \"hex\" or \"base64\""
            )));
        }
    };
    Ok(Some(Response::json(json!({ "sum": out }))))
}

/// `random[/:source][/:bytes]`: `bytes` (default 32) random bytes.
fn random(a: RandomArgs) -> Result<Option<Response>> {
    let bytes = match a.url_bytes {
        Some(b) => b
            .trim()
            .parse::<i64>()
            .map_err(|_| bad(format!("error parsing URL bytes {b:?}")))?,
        None => a.bytes.unwrap_or(32),
    };
    if !(1..=128 * 1024).contains(&bytes) {
        return Err(bad("bytes must be between 1 and 131072"));
    }
    let source = a.url_source.unwrap_or(a.source);
    let source = if source.is_empty() {
        "platform".to_owned()
    } else {
        source
    };
    if !SOURCES.contains(&source.as_str()) {
        return Err(bad(format!(
            "unsupported entropy source {source:?}; must be \"platform\", \"seal\" or \"all\""
        )));
    }
    let buf = crate::util::random(usize::try_from(bytes).map_err(internal)?)?;
    let out = match a.format.as_str() {
        "" | "base64" => b64(&buf),
        "hex" => hex::encode(&*buf),
        other => {
            return Err(bad(format!(
                "unsupported encoding format {other}; must be \"hex\" or \"base64\""
            )));
        }
    };
    Ok(Some(Response::json(json!({ "random_bytes": out }))))
}
