//! `backup/`, `restore/` (Vault's backup layout, so a key moves between Vault and Tresor),
//! `cache-config`, and bring-your-own-key: `wrapping_key` and `keys/:name/import`.

use aws_lc_rs::encoding::{AsBigEndian, AsDer};
use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrapPadded};
use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384, OAEP_SHA512_MGF1SHA512,
    OaepPrivateDecryptingKey, PrivateDecryptingKey,
};
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::{Map, Value, json};
use tresor_sdk::framework::Fields;
use tresor_sdk::{Context, Request, Response, Result, Storage, get_json, put_json};
use zeroize::Zeroizing;

use crate::engine::{
    CACHE_CONFIG, Engine, WRAPPING_KEY, check_name, mount_id, mount_of, version_prefix,
};
use crate::inputs::{CacheConfigInput, ImportInput, KeyName, RestoreInput, RestoreNamedInput};
use crate::key::{self, PolicyRecord, Prepared, Version, VersionRecord, ecdsa_signing};
use crate::keytype::KeyType;
use crate::util::{
    b64, bad, be_to_decimal, decimal_to_be, der, der_next, internal, pem, pkcs8_inner, unb64,
    unb64_secret,
};

/// Marks a big integer in JSON built here; written out as a bare number.
const BIG: &str = "@@tresor-bigint@@";

fn big(bytes: &[u8]) -> Value {
    json!(format!("{BIG}{}", be_to_decimal(bytes)))
}

/// JSON text with the big-integer markers turned into numbers.
fn to_json_text(v: &Value) -> Result<String> {
    let text = serde_json::to_string(v).map_err(internal)?;
    let marker = format!("\"{BIG}");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find(&marker) {
        out.push_str(&rest[..i]);
        let after = &rest[i + marker.len()..];
        let end = after.find('"').unwrap_or(after.len());
        out.push_str(&after[..end]);
        rest = after.get(end + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

/// JSON text with every number of more than 15 digits quoted, so big integers (Go's
/// `big.Int`) survive parsing without losing precision.
fn quote_big_numbers(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 64);
    let mut i = 0;
    let mut in_str = false;
    while i < b.len() {
        let c = b[i];
        if in_str {
            out.push(c as char);
            if c == b'\\' && i + 1 < b.len() {
                out.push(b[i + 1] as char);
                i += 2;
                continue;
            }
            if c == b'"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        if c == b'"' {
            in_str = true;
            out.push('"');
            i += 1;
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let digits = &text[start..i];
            if digits.len() > 15 && !(i < b.len() && matches!(b[i], b'.' | b'e' | b'E')) {
                out.push('"');
                out.push_str(digits);
                out.push('"');
            } else {
                out.push_str(digits);
            }
            continue;
        }
        // Non-ASCII bytes only occur inside strings in valid JSON.
        out.push(c as char);
        i += 1;
    }
    out
}

fn big_from(v: &Value, len: usize) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => decimal_to_be(s, len),
        Value::Number(n) => decimal_to_be(&n.to_string(), len),
        _ => None,
    }
}

/// The integers of a PKCS#1 `RSAPrivateKey`: n, e, d, p, q, dp, dq, qinv.
fn rsa_parts(pkcs1: &[u8]) -> Option<Vec<&[u8]>> {
    let (tag, mut seq, _) = der_next(pkcs1)?;
    if tag != 0x30 {
        return None;
    }
    let mut parts = Vec::new();
    while !seq.is_empty() {
        let (tag, v, rest) = der_next(seq)?;
        if tag != 0x02 {
            return None;
        }
        parts.push(v);
        seq = rest;
    }
    (parts.len() >= 9).then(|| parts[1..9].to_vec())
}

fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let bytes = &bytes[bytes
        .iter()
        .take_while(|b| **b == 0)
        .count()
        .min(bytes.len().saturating_sub(1))..];
    let mut v = Vec::with_capacity(bytes.len() + 1);
    if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        v.push(0);
    }
    v.extend_from_slice(bytes);
    der(0x02, &v)
}

/// A version as Vault's backup `KeyEntry`.
fn vault_entry(t: KeyType, convergent: bool, v: &Version) -> Result<Value> {
    let created = tresor_sdk::clock::parse_rfc3339(&v.created).unwrap_or(0);
    let mut e = json!({
        "key": null,
        "hmac_key": b64(&v.hmac_key),
        "time": v.created,
        "ec_x": null,
        "ec_y": null,
        "ec_d": null,
        "rsa_key": null,
        "public_key": "",
        "convergent_version": if convergent { key::CONVERGENT_VERSION } else { 0 },
        "creation_time": created,
    });
    match &v.prepared {
        Prepared::Ecdsa(kp) => {
            let point = kp.public_key().as_ref().to_vec();
            let half = (point.len() - 1) / 2;
            let d = kp.private_key().as_be_bytes().map_err(internal)?;
            e["ec_x"] = big(&point[1..1 + half]);
            e["ec_y"] = big(&point[1 + half..]);
            e["ec_d"] = big(d.as_ref());
            e["public_key"] = json!(v.public_key().unwrap_or_default());
        }
        Prepared::Rsa(_) => {
            let inner =
                pkcs8_inner(&v.key).ok_or_else(|| internal("stored RSA key is unreadable"))?;
            let p = rsa_parts(inner).ok_or_else(|| internal("stored RSA key is unreadable"))?;
            let e_int = p[1].iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            e["rsa_key"] = json!({
                "N": big(p[0]), "E": e_int, "D": big(p[2]),
                "Primes": [big(p[3]), big(p[4])],
                "Precomputed": {"Dp": big(p[5]), "Dq": big(p[6]), "Qinv": big(p[7]), "CRTValues": []},
            });
        }
        _ => {
            e["key"] = json!(b64(&v.key));
            if t == KeyType::Ed25519 {
                e["public_key"] = json!(b64(&v.key[32..]));
            }
        }
    }
    Ok(e)
}

/// Key material in this engine's stored form from a Vault `KeyEntry`.
fn material_from_entry(t: KeyType, e: &Value) -> Result<Zeroizing<Vec<u8>>> {
    let broken = || bad("invalid backup: unreadable key material");
    Ok(match t {
        KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521 => {
            let len = match t {
                KeyType::EcdsaP384 => 48,
                KeyType::EcdsaP521 => 66,
                _ => 32,
            };
            let x = big_from(&e["ec_x"], len).ok_or_else(broken)?;
            let y = big_from(&e["ec_y"], len).ok_or_else(broken)?;
            let d = Zeroizing::new(big_from(&e["ec_d"], len).ok_or_else(broken)?);
            let mut point = vec![4u8];
            point.extend(x);
            point.extend(y);
            let kp = EcdsaKeyPair::from_private_key_and_public_key(ecdsa_signing(t), &d, &point)
                .map_err(|_| broken())?;
            Zeroizing::new(kp.to_pkcs8v1().map_err(|_| broken())?.as_ref().to_vec())
        }
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
            let r = &e["rsa_key"];
            let num = |v: &Value| {
                big_from(v, 0).or_else(|| {
                    // Sized to the value itself.
                    let s = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        _ => return None,
                    };
                    (1..=1024).find_map(|len| decimal_to_be(&s, len))
                })
            };
            let pc = &r["Precomputed"];
            let fields = [
                &r["N"],
                &r["E"],
                &r["D"],
                &r["Primes"][0],
                &r["Primes"][1],
                &pc["Dp"],
                &pc["Dq"],
                &pc["Qinv"],
            ];
            let mut seq = der(0x02, &[0]);
            for v in fields {
                seq.extend(der_uint(&num(v).ok_or_else(broken)?));
            }
            let pkcs1 = Zeroizing::new(der(0x30, &seq));
            let kp = RsaKeyPair::from_der(&pkcs1).map_err(|_| broken())?;
            let out =
                AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&kp).map_err(|_| broken())?;
            Zeroizing::new(out.as_ref().to_vec())
        }
        _ => unb64_secret(e["key"].as_str().unwrap_or_default()).ok_or_else(broken)?,
    })
}

impl Engine {
    pub(crate) async fn backup(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let KeyName { name } = f.input();
        let mount = mount_id(&req);
        let s = &*req.storage;
        let _g = self.lock(&mount, &name).await;
        let Some(mut p) = self.stored_policy(s, &name).await? else {
            return Err(bad("key not found"));
        };
        if !p.exportable {
            return Err(bad("exporting is disallowed on the policy"));
        }
        if !p.allow_plaintext_backup {
            return Err(bad("plaintext backup is disallowed on the policy"));
        }
        let now = self.now();
        p.backup_info =
            Some(json!({"time": tresor_sdk::clock::rfc3339(now), "version": p.latest_version}));
        self.save(&mount, s, &p, Vec::new()).await?;
        let k = self.existing(&mount, s, &name, "key not found").await?;
        let t = k.kind;
        let mut live = Map::new();
        let mut archive = vec![json!({})];
        for n in 1..=p.latest_version {
            if n < p.min_available_version {
                archive.push(json!({}));
                continue;
            }
            let v = k.version(s, n).await?;
            let e = vault_entry(t, p.convergent_encryption, &v)?;
            if n >= p.min_decryption_version {
                live.insert(n.to_string(), e.clone());
            }
            archive.push(e);
        }
        let policy = json!({
            "name": p.name,
            "keys": live,
            "derived": p.derived,
            "kdf": 1,
            "convergent_encryption": p.convergent_encryption,
            // -1: each version carries its own convergent version (as Vault writes it).
            "convergent_version": if p.convergent_encryption { -1 } else { 0 },
            "exportable": p.exportable,
            "min_decryption_version": p.min_decryption_version,
            "min_encryption_version": p.min_encryption_version,
            "latest_version": p.latest_version,
            "archive_version": p.latest_version,
            "archive_min_version": 0,
            "min_available_version": p.min_available_version,
            "deletion_allowed": p.deletion_allowed,
            "convergent_encryption_version": 0,
            "type": t.vault_id(),
            "backup_info": p.backup_info,
            "restore_info": p.restore_info,
            "allow_plaintext_backup": p.allow_plaintext_backup,
            "version_template": "",
            "storage_prefix": "",
            "auto_rotate_period": p.auto_rotate_period.saturating_mul(1_000_000_000),
            "Imported": p.imported,
            "AllowImportedKeyRotation": p.allow_rotation,
        });
        let text = to_json_text(&json!({"policy": policy, "archived_keys": {"keys": archive}}))?;
        let text = Zeroizing::new(text);
        Ok(Some(Response::json(
            json!({"backup": b64(text.as_bytes())}),
        )))
    }

    /// `restore/:name`: under the name of the URL.
    pub(crate) async fn restore_named(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let KeyName { name } = f.input();
        let RestoreNamedInput { backup, force } = f.input();
        self.restore(req, &backup, &name, force).await
    }

    /// `restore`: under `name`, else the backup's.
    pub(crate) async fn restore_body(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let RestoreInput {
            backup,
            name,
            force,
        } = f.input();
        self.restore(req, &backup, &name, force).await
    }

    /// Restores `backup` under `name` (the backup's name when empty); `force` replaces a key of
    /// that name.
    async fn restore(
        &self,
        req: Request,
        backup: &str,
        name: &str,
        force: bool,
    ) -> Result<Option<Response>> {
        let mount = mount_id(&req);
        let s = &*req.storage;
        let raw = unb64_secret(backup)
            .filter(|b| !b.is_empty())
            .ok_or_else(|| bad("'backup' must be supplied, in base64"))?;
        let text = Zeroizing::new(quote_big_numbers(
            std::str::from_utf8(&raw).map_err(|_| bad("invalid backup: not JSON"))?,
        ));
        let data: Value =
            serde_json::from_str(&text).map_err(|_| bad("invalid backup: not JSON"))?;
        let pol = &data["policy"];
        let t = pol["type"]
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .and_then(KeyType::from_vault_id)
            .ok_or_else(|| bad("invalid backup: unsupported key type"))?;
        let name = match name {
            "" => pol["name"].as_str().unwrap_or_default().to_owned(),
            n => n.to_owned(),
        };
        check_name(&name)?;
        if name.contains('/') {
            return Err(bad("key names cannot contain '/'"));
        }
        let u = |k: &str| {
            pol[k]
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0)
        };
        let latest = u("latest_version");
        if latest == 0 {
            return Err(bad("invalid backup: no key versions"));
        }
        let derived = pol["derived"].as_bool().unwrap_or(false);
        let convergent = pol["convergent_encryption"].as_bool().unwrap_or(false);
        // The policy's convergent version, or -1: each version has its own.
        let policy_convergent = pol["convergent_version"].as_i64().unwrap_or(0);
        if derived && pol["kdf"].as_u64() != Some(1) {
            return Err(bad(
                "invalid backup: only the hkdf_sha256 key derivation is supported",
            ));
        }
        let min_available = u("min_available_version");
        let now = self.now();
        let mut versions = Vec::new();
        let mut last_time = 0;
        for n in min_available.max(1)..=latest {
            let e = pol["keys"]
                .get(n.to_string())
                .filter(|e| e.is_object() && !e.as_object().is_some_and(Map::is_empty))
                .or_else(|| data["archived_keys"]["keys"].get(n as usize))
                .filter(|e| e.as_object().is_some_and(|m| !m.is_empty()))
                .ok_or_else(|| bad(format!("invalid backup: key version {n} is missing")))?;
            let entry_convergent = if policy_convergent > 0 {
                policy_convergent
            } else {
                e["convergent_version"].as_i64().unwrap_or(0)
            };
            if convergent && entry_convergent < i64::from(key::CONVERGENT_VERSION) {
                return Err(bad(
                    "invalid backup: convergent keys of versions before 3 are not supported",
                ));
            }
            let material = material_from_entry(t, e)?;
            key::prepare(t, derived, &material)?;
            let created = e["time"]
                .as_str()
                .and_then(tresor_sdk::clock::parse_rfc3339)
                .unwrap_or(now);
            last_time = created;
            let hmac_key = e["hmac_key"].as_str().and_then(unb64).unwrap_or_default();
            let mut rec = Version::record(&material, tresor_sdk::clock::rfc3339(created))?;
            if !hmac_key.is_empty() {
                rec.hmac_key = b64(&hmac_key);
            }
            versions.push((n, rec));
        }
        let period_ns = pol["auto_rotate_period"].as_u64().unwrap_or(0);
        let p = PolicyRecord {
            name: name.clone(),
            key_type: t.name().to_owned(),
            derived,
            convergent_encryption: convergent,
            exportable: pol["exportable"].as_bool().unwrap_or(false),
            allow_plaintext_backup: pol["allow_plaintext_backup"].as_bool().unwrap_or(false),
            deletion_allowed: pol["deletion_allowed"].as_bool().unwrap_or(false),
            latest_version: latest,
            min_decryption_version: u("min_decryption_version").max(1),
            min_encryption_version: u("min_encryption_version"),
            min_available_version: min_available,
            auto_rotate_period: period_ns / 1_000_000_000,
            last_rotated: last_time,
            imported: pol["Imported"].as_bool().unwrap_or(false),
            allow_rotation: pol["AllowImportedKeyRotation"].as_bool().unwrap_or(true)
                || !pol["Imported"].as_bool().unwrap_or(false),
            key_size: if t == KeyType::Hmac { 32 } else { 0 },
            backup_info: pol.get("backup_info").filter(|v| !v.is_null()).cloned(),
            restore_info: Some(json!({"time": tresor_sdk::clock::rfc3339(now), "version": latest})),
        };
        let _g = self.lock(&mount, &name).await;
        if self.stored_policy(s, &name).await?.is_some() {
            if !force {
                return Err(bad(format!(
                    "key {name:?} already exists; use force to replace it"
                )));
            }
            s.delete_prefix(&version_prefix(&name)).await?;
        }
        self.save(&mount, s, &p, versions).await?;
        Ok(None)
    }

    pub(crate) async fn load_cache_config(&self, ctx: &Context) -> Result<()> {
        let size = get_json::<Value>(&*ctx.storage, CACHE_CONFIG)
            .await?
            .and_then(|v| v["size"].as_u64())
            .unwrap_or(0);
        let mount = mount_of(&ctx.mount);
        self.set_cache_size(&mount, usize::try_from(size).unwrap_or(0));
        self.forget_mount(&mount);
        Ok(())
    }

    pub(crate) async fn cache_config_read(
        &self,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        let size = get_json::<Value>(&*req.storage, CACHE_CONFIG)
            .await?
            .and_then(|v| v["size"].as_u64())
            .unwrap_or(0);
        Ok(Some(Response::json(json!({"size": size}))))
    }

    pub(crate) async fn cache_config_write(
        &self,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let CacheConfigInput { size } = f.input();
        if size != 0 && size < 10 {
            return Err(bad("size must be 0 or a value greater or equal to 10"));
        }
        let size = u64::try_from(size).map_err(|_| bad("size must not be negative"))?;
        put_json(&*req.storage, CACHE_CONFIG, &json!({"size": size})).await?;
        let mount = mount_id(&req);
        self.set_cache_size(&mount, usize::try_from(size).unwrap_or(0));
        self.forget_mount(&mount);
        Ok(Some(Response::json(json!({"size": size})).with_warning(
            "cache configurations take effect for keys loaded from now on",
        )))
    }

    /// The mount's BYOK wrapping key (RSA-4096, PKCS#8), made on first use.
    async fn wrapping_pkcs8(&self, mount: &str, s: &dyn Storage) -> Result<Zeroizing<Vec<u8>>> {
        let read = |v: Option<Value>| v.and_then(|v| v["key"].as_str().and_then(unb64_secret));
        if let Some(k) = read(get_json(s, WRAPPING_KEY).await?) {
            return Ok(k);
        }
        let _g = self.lock(mount, "\u{0}wrapping_key").await;
        if let Some(k) = read(get_json(s, WRAPPING_KEY).await?) {
            return Ok(k);
        }
        let k = self.generate(KeyType::Rsa4096, 0).await?;
        put_json(s, WRAPPING_KEY, &json!({"key": b64(&k)})).await?;
        Ok(k)
    }

    pub(crate) async fn wrapping_key(&self, req: Request, _f: Fields) -> Result<Option<Response>> {
        let k = self.wrapping_pkcs8(&mount_id(&req), &*req.storage).await?;
        let kp = RsaKeyPair::from_pkcs8(&k).map_err(internal)?;
        let spki = kp.public_key().as_der().map_err(internal)?;
        Ok(Some(Response::json(
            json!({"public_key": pem("PUBLIC KEY", spki.as_ref())}),
        )))
    }

    pub(crate) async fn import(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let KeyName { name } = f.input();
        check_name(&name)?;
        let mount = mount_id(&req);
        let s = &*req.storage;
        let input: ImportInput = f.input();
        let t = KeyType::parse(&input.kind)?;
        let derived = input.derived;
        let ct = unb64(&input.ciphertext)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| bad("ciphertext must be the base64 of the wrapped key"))?;
        let oaep = match input.hash_function.to_ascii_uppercase().as_str() {
            "" | "SHA256" => &OAEP_SHA256_MGF1SHA256,
            "SHA1" => &OAEP_SHA1_MGF1SHA1,
            "SHA384" => &OAEP_SHA384_MGF1SHA384,
            "SHA512" => &OAEP_SHA512_MGF1SHA512,
            other => return Err(bad(format!("unsupported hash function {other}"))),
        };
        let wk = self.wrapping_pkcs8(&mount, s).await?;
        let dk =
            OaepPrivateDecryptingKey::new(PrivateDecryptingKey::from_pkcs8(&wk).map_err(internal)?)
                .map_err(internal)?;
        let split = dk.key_size_bytes();
        if ct.len() <= split {
            return Err(bad("ciphertext is too short to hold a wrapped key"));
        }
        let mut aes = Zeroizing::new(vec![0u8; dk.min_output_size()]);
        let n = dk
            .decrypt(oaep, &ct[..split], &mut aes, None)
            .map_err(|_| bad("failed to unwrap the ephemeral AES key"))?
            .len();
        aes.truncate(n);
        let kek = AesKek::new(&AES_256, &aes)
            .map_err(|_| bad("the ephemeral key is not an AES-256 key"))?;
        let mut target = Zeroizing::new(vec![0u8; ct.len()]);
        let n = kek
            .unwrap_with_padding(&ct[split..], &mut target)
            .map_err(|_| bad("failed to unwrap the key: wrong wrapping key or corrupt ciphertext"))?
            .len();
        target.truncate(n);
        let material = match t {
            KeyType::Ed25519 => {
                let kp = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&target)
                    .map_err(|_| bad("the imported key is not an Ed25519 PKCS#8 key"))?;
                let seed = kp.seed().map_err(internal)?;
                let seed = seed.as_be_bytes().map_err(internal)?;
                let mut m = Zeroizing::new(seed.as_ref().to_vec());
                m.extend_from_slice(kp.public_key().as_ref());
                m
            }
            KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::EcdsaP521 => {
                let kp = EcdsaKeyPair::from_pkcs8(ecdsa_signing(t), &target).map_err(|_| {
                    bad(format!("the imported key is not a {} PKCS#8 key", t.name()))
                })?;
                Zeroizing::new(kp.to_pkcs8v1().map_err(internal)?.as_ref().to_vec())
            }
            _ => target,
        };
        key::prepare(t, derived, &material)?;
        let n = crate::engine::NewKey {
            kind: t,
            derived,
            convergent: false,
            exportable: input.exportable,
            allow_plaintext_backup: input.allow_plaintext_backup,
            auto_rotate_period: input.auto_rotate_period.as_secs(),
            key_size: if t == KeyType::Hmac {
                material.len()
            } else {
                32
            },
        };
        if t == KeyType::Hmac && material.is_empty() {
            return Err(bad("the imported hmac key is empty"));
        }
        if t != KeyType::Hmac {
            n.check()?;
        }
        let _g = self.lock(&mount, &name).await;
        if self.stored_policy(s, &name).await?.is_some() {
            return Err(bad(format!("key {name:?} already exists")));
        }
        let now = self.now();
        let p = PolicyRecord {
            name: name.clone(),
            key_type: t.name().to_owned(),
            derived,
            convergent_encryption: false,
            exportable: n.exportable,
            allow_plaintext_backup: n.allow_plaintext_backup,
            deletion_allowed: false,
            latest_version: 1,
            min_decryption_version: 1,
            min_encryption_version: 0,
            min_available_version: 0,
            auto_rotate_period: n.auto_rotate_period,
            last_rotated: now,
            imported: true,
            allow_rotation: input.allow_rotation,
            key_size: if t == KeyType::Hmac {
                material.len()
            } else {
                0
            },
            backup_info: None,
            restore_info: None,
        };
        let rec: VersionRecord = Version::record(&material, tresor_sdk::clock::rfc3339(now))?;
        self.save(&mount, s, &p, vec![(1, rec)]).await?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_numbers_survive_json() {
        let n = "123456789012345678901234567890";
        let quoted = quote_big_numbers(&format!("{{\"a\":{n},\"b\":\"x{n}\",\"c\":5}}"));
        let v: Value = serde_json::from_str(&quoted).unwrap();
        assert_eq!(v["a"], json!(n));
        assert_eq!(v["c"], json!(5));
        let text = to_json_text(&json!({"x": big(&decimal_to_be(n, 16).unwrap())})).unwrap();
        assert_eq!(text, format!("{{\"x\":{n}}}"));
    }
}
