//! `encrypt/`, `decrypt/`, `rewrap/` (each with `batch_input`) and `datakey/`.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tresor_sdk::framework::Fields;
use tresor_sdk::{Request, Response, Result, Storage};

use crate::batch::{self, CryptItem, Item};
use crate::crypto::{self, Nonces, check_decrypt_version, encryption_version, parse_ciphertext};
use crate::engine::{Engine, Key, check_name, mount_id};
use crate::inputs::{
    DatakeyInput, DecryptInput, EncryptInput, KeyName, NewKeyInput, PartialInput, RewrapInput,
};
use crate::key::Version;
use crate::keys::{is_create, new_key};
use crate::util::bad;

const MISSING_KEY: &str = "encryption key not found";

fn single_or_error(mut results: Vec<(Value, bool)>) -> Result<Map<String, Value>> {
    let (v, failed) = results.pop().unwrap_or((Value::Null, true));
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

/// Answers a request: the single result's fields, or the batch's results.
fn answer(
    is_batch: bool,
    results: Vec<(Value, bool)>,
    partial_code: i64,
) -> Result<Option<Response>> {
    if !is_batch {
        return Ok(Some(Response::data(single_or_error(results)?)));
    }
    let failures = results.iter().filter(|(_, e)| *e).count();
    batch::respond(
        results.into_iter().map(|(v, _)| v).collect(),
        failures,
        partial_code,
        "transit",
    )
}

fn require_aead(k: &Key, what: &str) -> Result<()> {
    if !k.kind.supports_encryption() {
        return Err(bad(format!(
            "key type {} does not support {what}",
            k.kind.name()
        )));
    }
    Ok(())
}

/// Encrypts `plaintext` with one item's settings. `last` keeps the version the previous item
/// used, so a batch looks its key version up once.
async fn encrypt_item(
    k: &Key,
    s: &dyn Storage,
    item: &CryptItem<'_>,
    plaintext: &[u8],
    nonces: &mut Nonces,
    last: &mut Option<Arc<Version>>,
) -> Result<Map<String, Value>> {
    let context = batch::bytes(&item.context, "context")?;
    let nonce = batch::bytes(&item.nonce, "nonce")?;
    let aad = batch::bytes(&item.associated_data, "associated_data")?;
    let n = encryption_version(&k.policy, item.key_version.clone().map_err(bad)?)?;
    let v = match last {
        Some(v) if v.number == n => v.clone(),
        _ => {
            let v = k.version(s, n).await?;
            *last = Some(v.clone());
            v
        }
    };
    let ct = crypto::encrypt(
        &k.policy, k.kind, &v, plaintext, &context, &nonce, &aad, nonces,
    )?;
    let mut m = Map::with_capacity(3);
    m.insert(
        "ciphertext".into(),
        Value::String(crypto::format_versioned(n, &ct)),
    );
    m.insert("key_version".into(), Value::from(n));
    Ok(m)
}

async fn decrypt_item(
    k: &Key,
    s: &dyn Storage,
    item: &CryptItem<'_>,
) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    if item.ciphertext.is_empty() {
        return Err(bad("missing ciphertext to decrypt"));
    }
    let context = batch::bytes(&item.context, "context")?;
    let aad = batch::bytes(&item.associated_data, "associated_data")?;
    let (n, bytes) = parse_ciphertext(&item.ciphertext)?;
    check_decrypt_version(&k.policy, n)?;
    let v = k.version(s, n).await?;
    crypto::decrypt(&k.policy, k.kind, &v, &bytes, &context, &aad)
}

/// The items of a request: its batch's, or the single item `single` makes of its fields.
fn crypt_items<'a>(
    batch_items: &'a Option<Vec<Item>>,
    single: impl FnOnce() -> CryptItem<'a>,
) -> Vec<CryptItem<'a>> {
    match batch_items {
        Some(list) => list.iter().map(CryptItem::from_json).collect(),
        None => vec![single()],
    }
}

impl Engine {
    pub(crate) async fn encrypt(&self, mut req: Request, f: Fields) -> Result<Option<Response>> {
        let KeyName { name } = f.input();
        check_name(&name)?;
        let input: EncryptInput = f.input();
        let batch_items = batch::items(&mut req)?;
        let mount = mount_id(&req);
        let s = &*req.storage;
        let is_batch = batch_items.is_some();
        if !is_batch && input.plaintext.is_none() {
            return Err(bad("missing plaintext to encrypt"));
        }
        let items = crypt_items(&batch_items, || CryptItem {
            plaintext: Cow::Borrowed(input.plaintext.as_deref().unwrap_or_default()),
            context: Cow::Borrowed(&input.context),
            nonce: Cow::Borrowed(&input.nonce),
            associated_data: Cow::Borrowed(&input.associated_data),
            key_version: Ok(input.key_version),
            ..CryptItem::empty()
        });
        let key = match self.key(&mount, s, &name).await? {
            Some(k) => k,
            None if is_create(&req) => self.upsert(&req, &name, f.input(), &items).await?,
            None => return Err(bad(MISSING_KEY)),
        };
        require_aead(&key, "encryption")?;
        let mut results = Vec::with_capacity(items.len());
        let mut nonces = Nonces::new(items.len());
        let mut last = None;
        for item in &items {
            let r = match batch::secret_bytes(&item.plaintext, "plaintext") {
                Ok(pt) => encrypt_item(&key, s, item, &pt, &mut nonces, &mut last).await,
                Err(e) => Err(e),
            };
            results.push(batch::result(&item.reference, r));
        }
        let PartialInput {
            partial_failure_response_code,
        } = f.input();
        answer(is_batch, results, partial_failure_response_code)
    }

    /// Vault's upsert: an encrypt that may create (the core decided "create") makes the key,
    /// derived if the first item has a context.
    async fn upsert(
        &self,
        req: &Request,
        name: &str,
        settings: NewKeyInput,
        items: &[CryptItem<'_>],
    ) -> Result<Arc<Key>> {
        let mount = mount_id(req);
        let s = &*req.storage;
        let derived = items.first().is_some_and(|i| !i.context.is_empty());
        let n = new_key(&settings, derived, None)?;
        if n.convergent && !derived {
            return Err(bad(
                "convergent encryption requires derivation to be enabled, so context is required",
            ));
        }
        let _g = self.lock(&mount, name).await;
        if let Some(k) = self.key(&mount, s, name).await? {
            return Ok(k);
        }
        self.create(&mount, s, name, &n).await
    }

    pub(crate) async fn decrypt(&self, mut req: Request, f: Fields) -> Result<Option<Response>> {
        let KeyName { name } = f.input();
        let input: DecryptInput = f.input();
        let batch_items = batch::items(&mut req)?;
        let s = &*req.storage;
        let is_batch = batch_items.is_some();
        let items = crypt_items(&batch_items, || CryptItem {
            ciphertext: Cow::Borrowed(&input.ciphertext),
            context: Cow::Borrowed(&input.context),
            nonce: Cow::Borrowed(&input.nonce),
            associated_data: Cow::Borrowed(&input.associated_data),
            ..CryptItem::empty()
        });
        let key = self
            .existing(&mount_id(&req), s, &name, MISSING_KEY)
            .await?;
        require_aead(&key, "decryption")?;
        let mut results = Vec::with_capacity(items.len());
        for item in &items {
            let r = decrypt_item(&key, s, item).await.map(|pt| {
                let mut m = Map::new();
                m.insert("plaintext".into(), json!(batch::encode(&pt)));
                m
            });
            results.push(batch::result(&item.reference, r));
        }
        let PartialInput {
            partial_failure_response_code,
        } = f.input();
        answer(is_batch, results, partial_failure_response_code)
    }

    pub(crate) async fn rewrap(&self, mut req: Request, f: Fields) -> Result<Option<Response>> {
        let KeyName { name } = f.input();
        let input: RewrapInput = f.input();
        let batch_items = batch::items(&mut req)?;
        let s = &*req.storage;
        let is_batch = batch_items.is_some();
        let items = crypt_items(&batch_items, || CryptItem {
            ciphertext: Cow::Borrowed(&input.ciphertext),
            context: Cow::Borrowed(&input.context),
            nonce: Cow::Borrowed(&input.nonce),
            associated_data: Cow::Borrowed(&input.associated_data),
            key_version: Ok(input.key_version),
            ..CryptItem::empty()
        });
        let key = self
            .existing(&mount_id(&req), s, &name, MISSING_KEY)
            .await?;
        require_aead(&key, "encryption")?;
        let mut results = Vec::with_capacity(items.len());
        let mut nonces = Nonces::new(items.len());
        let mut last = None;
        for item in &items {
            let r = async {
                let pt = decrypt_item(&key, s, item).await?;
                encrypt_item(&key, s, item, &pt, &mut nonces, &mut last).await
            }
            .await;
            results.push(batch::result(&item.reference, r));
        }
        let PartialInput {
            partial_failure_response_code,
        } = f.input();
        answer(is_batch, results, partial_failure_response_code)
    }

    pub(crate) async fn datakey(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let KeyName { name } = f.input();
        let input: DatakeyInput = f.input();
        let with_plaintext = match input.plaintext.as_str() {
            "plaintext" => true,
            "wrapped" => false,
            other => {
                return Err(bad(format!(
                    "invalid path: {other:?} must be \"plaintext\" or \"wrapped\""
                )));
            }
        };
        let bits = input.bits;
        if ![128, 256, 512].contains(&bits) {
            return Err(bad("invalid bits value; must be 128, 256 or 512"));
        }
        let s = &*req.storage;
        let key = self
            .existing(&mount_id(&req), s, &name, MISSING_KEY)
            .await?;
        if !key.kind.is_aead() {
            return Err(bad(format!(
                "key type {} does not support data keys",
                key.kind.name()
            )));
        }
        let data_key = crate::util::random(usize::try_from(bits / 8).unwrap_or(32))?;
        let item = CryptItem {
            context: Cow::Borrowed(&input.context),
            nonce: Cow::Borrowed(&input.nonce),
            key_version: Ok(input.key_version),
            ..CryptItem::empty()
        };
        let mut m = encrypt_item(&key, s, &item, &data_key, &mut Nonces::new(1), &mut None).await?;
        if with_plaintext {
            m.insert("plaintext".into(), json!(batch::encode(&data_key)));
        }
        Ok(Some(Response::data(m)))
    }
}
