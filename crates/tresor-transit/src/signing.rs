//! `sign/`, `verify/` (signatures and HMACs), `hmac/`, `hash/`, `random/`.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use serde_json::{Map, Value, json};
use tresor_sdk::framework::Fields;
use tresor_sdk::{Request, Response, Result, Storage};

use crate::batch::{self, Item};
use crate::crypto::{
    self, Hash, SignOpts, check_decrypt_version, encryption_version, split_versioned,
};
use crate::engine::{Engine, Key, mount_id};
use crate::keytype::KeyType;
use crate::util::{b64, bad, internal};

/// The segments of the request path after `base`.
fn url_segments(req: &Request, base: &str) -> Vec<String> {
    req.path
        .strip_prefix(base)
        .unwrap_or_default()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The hash algorithm: the URL's, else `hash_algorithm`, else the deprecated `algorithm`.
fn hash_name(f: &Fields, fields: &[&str]) -> String {
    if let Some(u) = f.str("urlalgorithm").filter(|s| !s.is_empty()) {
        return u.to_owned();
    }
    for name in fields {
        if f.is_set(name) {
            let v = f.string(name);
            if !v.is_empty() {
                return v;
            }
        }
    }
    "sha2-256".to_owned()
}

fn sign_opts(f: &Fields) -> Result<SignOpts> {
    let hash = Hash::parse(&hash_name(f, &["hash_algorithm", "algorithm"]))?;
    let pss = match f.string("signature_algorithm").as_str() {
        "" | "pss" => true,
        "pkcs1v15" => false,
        other => return Err(bad(format!("unsupported signature algorithm {other}"))),
    };
    let jws = match f.string("marshaling_algorithm").as_str() {
        "" | "asn1" => false,
        "jws" => true,
        other => return Err(bad(format!("unsupported marshaling algorithm {other}"))),
    };
    let max_salt = match f.string("salt_length").as_str() {
        "" | "auto" => true,
        "hash" => false,
        n => match n.parse::<usize>() {
            Ok(n) if n == hash.output_len() => false,
            _ => {
                return Err(bad(format!(
                    "unsupported salt_length {n}; use auto, hash or the hash length ({})",
                    hash.output_len()
                )));
            }
        },
    };
    Ok(SignOpts {
        hash,
        prehashed: f.flag("prehashed"),
        pss,
        max_salt,
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
    f: &Fields,
) -> Result<Option<Response>> {
    if !batch_items {
        let r = results.pop().unwrap_or((Value::Null, true));
        return Ok(Some(Response::data(single_or_error(r)?)));
    }
    let failures = results.iter().filter(|(_, e)| *e).count();
    batch::respond(
        results.into_iter().map(|(v, _)| v).collect(),
        failures,
        f.int("partial_failure_response_code").unwrap_or(0),
        "transit",
    )
}

async fn sign_item(
    k: &Key,
    s: &dyn Storage,
    item: &Item,
    version: u32,
    o: &SignOpts,
) -> Result<Map<String, Value>> {
    let input = batch::bytes(item, "input")?;
    let context = batch::bytes(item, "context")?;
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
    item: &Item,
    o: &SignOpts,
) -> Result<Map<String, Value>> {
    let input = batch::bytes(item, "input")?;
    let context = batch::bytes(item, "context")?;
    let sig = batch::string(item, "signature");
    let mac = batch::string(item, "hmac");
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

impl Engine {
    pub(crate) async fn sign(&self, mut req: Request, f: Fields) -> Result<Option<Response>> {
        let name = f.string("name");
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
        let o = sign_opts(&f)?;
        let version = encryption_version(&key.policy, f.int("key_version").unwrap_or(0))?;
        let is_batch = batch_items.is_some();
        let items = batch_items.unwrap_or_else(|| vec![batch::single(&f, &["input", "context"])]);
        let mut results = Vec::with_capacity(items.len());
        for item in &items {
            results.push(batch::result(
                item,
                sign_item(&key, s, item, version, &o).await,
            ));
        }
        answer(is_batch, results, &f)
    }

    pub(crate) async fn verify(&self, mut req: Request, f: Fields) -> Result<Option<Response>> {
        let name = f.string("name");
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
        let o = sign_opts(&f)?;
        let is_batch = batch_items.is_some();
        let items = batch_items.unwrap_or_else(|| {
            vec![batch::single(
                &f,
                &["input", "context", "signature", "hmac"],
            )]
        });
        let mut results = Vec::with_capacity(items.len());
        for item in &items {
            results.push(batch::result(item, verify_item(&key, s, item, &o).await));
        }
        answer(is_batch, results, &f)
    }

    pub(crate) async fn hmac(&self, mut req: Request, f: Fields) -> Result<Option<Response>> {
        let name = f.string("name");
        let batch_items = batch::items(&mut req)?;
        let s = &*req.storage;
        let key = self
            .existing(&mount_id(&req), s, &name, "HMAC key not found")
            .await?;
        let hash = Hash::parse(&hash_name(&f, &["algorithm"]))?;
        let n = encryption_version(&key.policy, f.int("key_version").unwrap_or(0))?;
        let v = key.version(s, n).await?;
        let is_batch = batch_items.is_some();
        let items = batch_items.unwrap_or_else(|| vec![batch::single(&f, &["input"])]);
        let mut results = Vec::with_capacity(items.len());
        for item in &items {
            let r = batch::bytes(item, "input").map(|input| {
                let mac = hash.hmac(hmac_key(&key, &v), &input);
                let mut m = Map::new();
                m.insert("hmac".into(), json!(crypto::format_versioned(n, &mac)));
                m
            });
            results.push(batch::result(item, r));
        }
        answer(is_batch, results, &f)
    }

    pub(crate) async fn hash(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let _ = req;
        let hash = match hash_name(&f, &["algorithm"]).as_str() {
            "sha1" => return Err(bad("unsupported algorithm sha1")),
            other => {
                Hash::parse(other).map_err(|_| bad(format!("unsupported algorithm {other}")))?
            }
        };
        let input = crate::util::unb64(&f.string("input"))
            .ok_or_else(|| bad("unable to decode input as base64"))?;
        let sum = hash.digest(&input);
        let out = match f.string("format").as_str() {
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

    /// `random[/:source][/:bytes]`.
    pub(crate) async fn random(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        const SOURCES: [&str; 3] = ["platform", "seal", "all"];
        let segments = url_segments(&req, "random");
        let (url_source, url_bytes) = match segments.as_slice() {
            [a, b] => (Some(a.clone()), Some(b.clone())),
            [a] if SOURCES.contains(&a.as_str()) => (Some(a.clone()), None),
            [a] => (None, Some(a.clone())),
            _ => (None, None),
        };
        let bytes = match url_bytes {
            Some(b) => b
                .trim()
                .parse::<i64>()
                .map_err(|_| bad(format!("error parsing URL bytes {b:?}")))?,
            None => f.int("bytes").unwrap_or(32),
        };
        if !(1..=128 * 1024).contains(&bytes) {
            return Err(bad("bytes must be between 1 and 131072"));
        }
        let source = url_source.unwrap_or_else(|| f.string("source"));
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
        let out = match f.string("format").as_str() {
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
}
