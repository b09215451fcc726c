//! CA keys: `config/ca` (generate or import a key and make it the default issuer, refused
//! while one is configured, as in Vault; read; delete every issuer), `issuers` (list), `issuers/import[/:name]`, `issuer/:ref` (read,
//! rename, delete), `issuer/:ref/public_key` and `public_key` (unauthenticated, plain text),
//! and `config/issuers` (the default). Several issuers per mount let a CA rotate: add the new
//! key, publish both public keys to servers, switch the default, then delete the old one.

use serde_json::{Map, Value, json};
use tresor_sdk::framework::Fields;
use tresor_sdk::{LogicalError, RawResponse, Request, Response, Result, Storage};

use crate::engine::{self, Engine};
use crate::inputs::{CaKeyInput, DefaultIssuerInput, ImportInput, IssuerInput, IssuerRefInput};
use crate::keys::{CaKey, KeySpec, UserKey};
use crate::store::{self, DefaultIssuer, IssuerRecord};
use zeroize::Zeroizing;

/// The key a `config/ca` or `issuers/import` request asks for: generated or imported.
fn key_from_request(f: CaKeyInput) -> Result<CaKey> {
    let (private, public) = (Zeroizing::new(f.private_key), f.public_key);
    // As in Vault: asking for a generated key while giving one is a contradiction, refused
    // rather than resolved either way.
    if f.generate_signing_key == Some(true)
        && (!private.trim().is_empty() || !public.trim().is_empty())
    {
        return Err(LogicalError::invalid(
            "public_key and private_key must not be set when generate_signing_key is set to true",
        ));
    }
    if !private.trim().is_empty() {
        let key = CaKey::import(&private).map_err(LogicalError::InvalidRequest)?;
        if !public.trim().is_empty() {
            let given = UserKey::parse(&public).map_err(LogicalError::InvalidRequest)?;
            if &given.key != key.public_key() {
                return Err(LogicalError::invalid(
                    "public_key does not match private_key",
                ));
            }
        }
        return Ok(key);
    }
    if !public.trim().is_empty() {
        return Err(LogicalError::invalid(
            "missing private_key: a public_key alone cannot sign",
        ));
    }
    if f.generate_signing_key == Some(false) {
        return Err(LogicalError::invalid(
            "missing private_key and public_key; set generate_signing_key=true to generate a CA key",
        ));
    }
    let spec =
        KeySpec::resolve(&f.key_type, f.key_bits, 4096).map_err(LogicalError::InvalidRequest)?;
    CaKey::generate(spec).map_err(LogicalError::Internal)
}

fn issuer_data(r: &IssuerRecord) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("issuer_id".into(), json!(r.id));
    m.insert("issuer_name".into(), json!(r.name));
    m.insert("public_key".into(), json!(r.public_key));
    m
}

fn plain_text(body: String) -> Response {
    Response {
        raw: Some(RawResponse {
            headers: Vec::new(),
            status: 200,
            content_type: "text/plain".into(),
            body: body.into_bytes(),
        }),
        ..Default::default()
    }
}

async fn check_name_free(s: &dyn Storage, name: &str, except: &str) -> Result<()> {
    if name.is_empty() {
        return Ok(());
    }
    if name == "default" || !engine::valid_name(name, false) {
        return Err(LogicalError::invalid(format!(
            "invalid issuer_name {name:?}: letters, digits, '_', '-' and '.', not 'default'"
        )));
    }
    if engine::all_issuers(s)
        .await?
        .iter()
        .any(|r| r.name == name && r.id != except)
    {
        return Err(LogicalError::invalid(format!(
            "issuer name {name:?} is already in use"
        )));
    }
    Ok(())
}

/// Stores a new issuer (and makes it the default when asked or when it is the first).
async fn add_issuer(
    s: &dyn Storage,
    key: &CaKey,
    name: String,
    set_default: bool,
) -> Result<IssuerRecord> {
    check_name_free(s, &name, "").await?;
    let id = uuid::Uuid::new_v4().to_string();
    let record = IssuerRecord::new(id.clone(), name, key);
    let first = engine::default_issuer_id(s).await?.is_none();
    let mut ops = vec![(
        store::issuer_key(&id),
        Some(serde_json::to_vec(&record).map_err(LogicalError::internal)?),
    )];
    if set_default || first {
        let d = DefaultIssuer {
            version: 1,
            default: id,
        };
        ops.push((
            store::CONFIG_ISSUERS.to_owned(),
            Some(serde_json::to_vec(&d).map_err(LogicalError::internal)?),
        ));
    }
    s.transaction(ops).await?;
    Ok(record)
}

impl Engine {
    /// Vault's `config/ca` write: refused while a CA (the default issuer) is configured, so a
    /// script that writes it twice does not silently switch CAs; `issuers/import` adds
    /// another issuer for a rotation.
    pub async fn config_ca_write(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        if engine::default_issuer_id(&*req.storage).await?.is_some() {
            return Err(LogicalError::invalid(
                "keys are already configured; delete them before reconfiguring (or add another issuer with issuers/import)",
            ));
        }
        let input: CaKeyInput = f.input();
        let imported = !input.private_key.trim().is_empty();
        let key = key_from_request(input)?;
        let record = add_issuer(&*req.storage, &key, String::new(), true).await?;
        // Vault's answers: a generated key's public half (and here its issuer); nothing
        // (204) for an imported one, whose public key the caller has.
        if imported {
            return Ok(None);
        }
        Ok(Some(Response::data(issuer_data(&record))))
    }

    pub async fn config_ca_read(&self, req: Request, _f: Fields) -> Result<Option<Response>> {
        let r = engine::resolve_issuer(&*req.storage, "default").await?;
        Ok(Some(Response::data(issuer_data(&r))))
    }

    pub async fn config_ca_delete(&self, req: Request, _f: Fields) -> Result<Option<Response>> {
        let s = &*req.storage;
        let ids = s.list(store::ISSUERS).await?;
        let mut ops: Vec<(String, Option<Vec<u8>>)> =
            ids.iter().map(|id| (store::issuer_key(id), None)).collect();
        ops.push((store::CONFIG_ISSUERS.to_owned(), None));
        s.transaction(ops).await?;
        // 204, as Vault answers (clients such as hvac expect no body).
        Ok(None)
    }

    pub async fn public_key(&self, req: Request, _f: Fields) -> Result<Option<Response>> {
        let r = engine::resolve_issuer(&*req.storage, "default").await?;
        Ok(Some(plain_text(r.public_key.clone())))
    }

    pub async fn issuers_list(&self, req: Request, _f: Fields) -> Result<Option<Response>> {
        let s = &*req.storage;
        let default = engine::default_issuer_id(s).await?.unwrap_or_default();
        let mut keys = Vec::new();
        let mut info = Map::new();
        for r in engine::all_issuers(s).await? {
            keys.push(r.id.clone());
            info.insert(
                r.id.clone(),
                json!({"is_default": r.id == default, "issuer_name": r.name, "public_key": r.public_key}),
            );
        }
        let mut m = Map::new();
        m.insert("keys".into(), json!(keys));
        m.insert("key_info".into(), Value::Object(info));
        Ok(Some(Response::data(m)))
    }

    pub async fn issuers_import(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let key = key_from_request(f.input())?;
        let input: ImportInput = f.input();
        let record = add_issuer(&*req.storage, &key, input.issuer_name, input.set_default).await?;
        Ok(Some(Response::data(issuer_data(&record))))
    }

    pub async fn issuer_read(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let r = engine::resolve_issuer(&*req.storage, &f.input::<IssuerInput>().issuer_ref).await?;
        Ok(Some(Response::data(issuer_data(&r))))
    }

    pub async fn issuer_public_key(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let r =
            engine::resolve_issuer(&*req.storage, &f.input::<IssuerRefInput>().issuer_ref).await?;
        Ok(Some(plain_text(r.public_key.clone())))
    }

    pub async fn issuer_update(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let s = &*req.storage;
        let input: IssuerInput = f.input();
        let mut r = engine::resolve_issuer(s, &input.issuer_ref).await?;
        if let Some(name) = input.issuer_name {
            check_name_free(s, &name, &r.id).await?;
            r.name = name;
            store::save(s, &store::issuer_key(&r.id), &r).await?;
        }
        Ok(Some(Response::data(issuer_data(&r))))
    }

    pub async fn issuer_delete(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let s = &*req.storage;
        let reference = f.input::<IssuerInput>().issuer_ref;
        let r = match engine::resolve_issuer(s, &reference).await {
            Ok(r) => r,
            // Deleting what is not there succeeds, as deletes do.
            Err(_) => return Ok(None),
        };
        let default = engine::default_issuer_id(s).await?;
        let mut ops = vec![(store::issuer_key(&r.id), None)];
        let mut resp = Response::default();
        if default.as_deref() == Some(r.id.as_str()) {
            ops.push((store::CONFIG_ISSUERS.to_owned(), None));
            resp = resp.with_warning(format!(
                "Deleted issuer {} (via issuer_ref {reference}); this was configured as the default issuer. Operations without an explicit issuer will not work until a new default is configured.",
                r.id
            ));
        }
        s.transaction(ops).await?;
        Ok(if resp.warnings.is_empty() {
            None
        } else {
            Some(resp)
        })
    }

    pub async fn config_issuers_read(&self, req: Request, _f: Fields) -> Result<Option<Response>> {
        let id = engine::default_issuer_id(&*req.storage)
            .await?
            .unwrap_or_default();
        Ok(Some(Response::json(json!({"default": id}))))
    }

    pub async fn config_issuers_write(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let s = &*req.storage;
        let reference = f.input::<DefaultIssuerInput>().default;
        if reference.trim().is_empty() || reference == "default" {
            return Err(LogicalError::invalid(
                "default must name an issuer (its id or name)",
            ));
        }
        let r = engine::resolve_issuer(s, &reference).await?;
        store::save(
            s,
            store::CONFIG_ISSUERS,
            &DefaultIssuer {
                version: 1,
                default: r.id.clone(),
            },
        )
        .await?;
        Ok(Some(Response::json(json!({"default": r.id}))))
    }
}
