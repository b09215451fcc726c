//! Roles (`roles/:role`): the `ca` type (who and what a certificate may name, its
//! extensions, options, lifetime and signer) and the `otp` type (which user and addresses a
//! one-time password is for). A write replaces the whole role, as in Vault; unknown key
//! types (and Vault's removed `dynamic` type) are refused before anything is stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tresor_sdk::framework::Fields;
use tresor_sdk::record::Versioned;
use tresor_sdk::{LogicalError, Request, Response, Result, Storage, identity};

use crate::engine::{self, Engine};
use crate::inputs::RoleInput;
use crate::store;

/// One role, as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Role {
    pub version: u32,
    pub key_type: String,
    pub default_user: String,
    pub default_user_template: bool,
    pub allowed_users: String,
    pub allowed_users_template: bool,
    // ca
    pub allowed_domains: String,
    pub allowed_domains_template: bool,
    pub allow_user_certificates: bool,
    pub allow_host_certificates: bool,
    pub allow_subdomains: bool,
    pub allow_bare_domains: bool,
    pub allowed_extensions: String,
    pub default_extensions: BTreeMap<String, String>,
    pub default_extensions_template: bool,
    pub allowed_critical_options: String,
    pub default_critical_options: BTreeMap<String, String>,
    /// Key kind (`rsa`, `ec`, `ed25519`) → the sizes allowed.
    pub allowed_user_key_lengths: BTreeMap<String, Vec<u32>>,
    pub algorithm_signer: String,
    pub key_id_format: String,
    pub ttl: u64,
    pub max_ttl: u64,
    pub not_before_duration: u64,
    pub allow_user_key_ids: bool,
    pub allow_empty_principals: bool,
    pub issuer_ref: String,
    // otp
    pub cidr_list: String,
    pub exclude_cidr_list: String,
    pub port: u16,
}

impl Versioned for Role {
    const FORMAT: u32 = 1;
    fn format(&self) -> u32 {
        self.version
    }
}

/// Splits Vault's comma-separated role lists.
pub fn split(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The kind names `allowed_user_key_lengths` may use, folded to `rsa`, `ec`, `ed25519`.
fn key_kind(name: &str) -> Option<&'static str> {
    match name.trim().to_ascii_lowercase().as_str() {
        "rsa" | "ssh-rsa" => Some("rsa"),
        "ec" | "ecdsa" | "ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384" | "ecdsa-sha2-nistp521" => {
            Some("ec")
        }
        "ed25519" | "ssh-ed25519" => Some("ed25519"),
        _ => None,
    }
}

fn key_lengths(m: Option<&Map<String, Value>>) -> Result<BTreeMap<String, Vec<u32>>> {
    let mut out: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (k, v) in m.into_iter().flatten() {
        let kind = key_kind(k).ok_or_else(|| {
            LogicalError::invalid(format!(
                "allowed_user_key_lengths: unknown key type {k:?} (expected rsa, ec or ed25519)"
            ))
        })?;
        let one = |x: &Value| -> Result<u32> {
            x.as_u64()
                .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    LogicalError::invalid(format!(
                        "allowed_user_key_lengths: {k}: expected a key size or a list of sizes, got {x}"
                    ))
                })
        };
        let sizes = match v {
            Value::Array(a) => a.iter().map(one).collect::<Result<Vec<_>>>()?,
            x => vec![one(x)?],
        };
        out.entry(kind.to_owned()).or_default().extend(sizes);
    }
    Ok(out)
}

fn check_templates(list: &str, field: &str) -> Result<()> {
    for item in split(list) {
        identity::validate(&item).map_err(|e| LogicalError::invalid(format!("{field}: {e}")))?;
    }
    Ok(())
}

fn parse_cidrs(list: &str, field: &str) -> Result<()> {
    tresor_sdk::cidr::parse_list(&split(list))
        .map(|_| ())
        .map_err(|e| LogicalError::invalid(format!("{field}: {e}")))
}

/// Builds a role from a write's fields, refusing what Vault refuses.
fn role_from_input(f: RoleInput) -> Result<Role> {
    let key_type = f.key_type.trim().to_ascii_lowercase();
    let mut role = Role {
        version: Role::FORMAT,
        key_type: key_type.clone(),
        default_user: f.default_user,
        default_user_template: f.default_user_template,
        allowed_users: f.allowed_users,
        allowed_users_template: f.allowed_users_template,
        ..Default::default()
    };
    match key_type.as_str() {
        "otp" => {
            if role.default_user.trim().is_empty() {
                return Err(LogicalError::invalid(
                    "missing default_user: an otp role needs one",
                ));
            }
            role.cidr_list = f.cidr_list;
            role.exclude_cidr_list = f.exclude_cidr_list;
            parse_cidrs(&role.cidr_list, "cidr_list")?;
            parse_cidrs(&role.exclude_cidr_list, "exclude_cidr_list")?;
            let port = f.port;
            role.port = u16::try_from(if port == 0 { 22 } else { port })
                .map_err(|_| LogicalError::invalid(format!("port {port} is not a TCP port")))?;
        }
        "ca" => {
            role.allowed_domains = f.allowed_domains;
            role.allowed_domains_template = f.allowed_domains_template;
            role.allow_user_certificates = f.allow_user_certificates;
            role.allow_host_certificates = f.allow_host_certificates;
            if !role.allow_user_certificates && !role.allow_host_certificates {
                return Err(LogicalError::invalid(
                    "Either 'allow_user_certificates' or 'allow_host_certificates' must be set to 'true'",
                ));
            }
            role.allow_subdomains = f.allow_subdomains;
            role.allow_bare_domains = f.allow_bare_domains;
            role.allowed_extensions = f.allowed_extensions;
            role.default_extensions = f.default_extensions;
            role.default_extensions_template = f.default_extensions_template;
            role.allowed_critical_options = f.allowed_critical_options;
            role.default_critical_options = f.default_critical_options;
            role.allowed_user_key_lengths = key_lengths(Some(&f.allowed_user_key_lengths))?;
            role.algorithm_signer = match f.algorithm_signer.trim() {
                "" | "default" => "default".into(),
                s @ ("rsa-sha2-256" | "rsa-sha2-512") => s.into(),
                "ssh-rsa" => {
                    return Err(LogicalError::invalid(
                        "algorithm_signer ssh-rsa (SHA-1) is refused: OpenSSH 8.8 and later reject such certificates; use rsa-sha2-256 or rsa-sha2-512",
                    ));
                }
                other => {
                    return Err(LogicalError::invalid(format!(
                        "unknown algorithm_signer {other:?}: expected default, rsa-sha2-256 or rsa-sha2-512"
                    )));
                }
            };
            role.key_id_format = f.key_id_format;
            role.ttl = f.ttl.as_secs();
            role.max_ttl = f.max_ttl.as_secs();
            if role.max_ttl > 0 && role.ttl > role.max_ttl {
                return Err(LogicalError::invalid("ttl cannot be longer than max_ttl"));
            }
            role.not_before_duration = f.not_before_duration.map_or(30, |d| d.as_secs());
            role.allow_user_key_ids = f.allow_user_key_ids;
            role.allow_empty_principals = f.allow_empty_principals;
            role.issuer_ref = match f.issuer_ref.trim() {
                "" => "default".into(),
                s => s.into(),
            };
            if role.allowed_users_template {
                check_templates(&role.allowed_users, "allowed_users")?;
            }
            if role.default_user_template {
                check_templates(&role.default_user, "default_user")?;
            }
            if role.allowed_domains_template {
                check_templates(&role.allowed_domains, "allowed_domains")?;
            }
        }
        "dynamic" => {
            return Err(LogicalError::invalid(
                "dynamic key type roles are no longer supported",
            ));
        }
        "" => {
            return Err(LogicalError::invalid(
                "missing key_type: expected ca or otp",
            ));
        }
        other => {
            return Err(LogicalError::invalid(format!(
                "invalid key_type {other:?}: expected ca or otp"
            )));
        }
    }
    Ok(role)
}

fn role_data(r: &Role) -> Map<String, Value> {
    let v = if r.key_type == "otp" {
        json!({
            "key_type": r.key_type,
            "default_user": r.default_user,
            "allowed_users": r.allowed_users,
            "cidr_list": r.cidr_list,
            "exclude_cidr_list": r.exclude_cidr_list,
            "port": r.port,
        })
    } else {
        json!({
            "key_type": r.key_type,
            "algorithm_signer": r.algorithm_signer,
            "allow_bare_domains": r.allow_bare_domains,
            "allow_empty_principals": r.allow_empty_principals,
            "allow_host_certificates": r.allow_host_certificates,
            "allow_subdomains": r.allow_subdomains,
            "allow_user_certificates": r.allow_user_certificates,
            "allow_user_key_ids": r.allow_user_key_ids,
            "allowed_critical_options": r.allowed_critical_options,
            "allowed_domains": r.allowed_domains,
            "allowed_domains_template": r.allowed_domains_template,
            "allowed_extensions": r.allowed_extensions,
            "allowed_user_key_lengths": r.allowed_user_key_lengths,
            "allowed_users": r.allowed_users,
            "allowed_users_template": r.allowed_users_template,
            "default_critical_options": r.default_critical_options,
            "default_extensions": r.default_extensions,
            "default_extensions_template": r.default_extensions_template,
            "default_user": r.default_user,
            "default_user_template": r.default_user_template,
            "issuer_ref": r.issuer_ref,
            "key_id_format": r.key_id_format,
            "max_ttl": r.max_ttl,
            "not_before_duration": r.not_before_duration,
            "ttl": r.ttl,
        })
    };
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Loads a role, or refuses with Vault's `Unknown role` error.
pub async fn load_role(s: &dyn Storage, name: &str) -> Result<Role> {
    store::load::<Role>(s, "role", &store::role_key(name))
        .await?
        .ok_or_else(|| LogicalError::invalid(format!("Unknown role: {name}")))
}

fn role_name(name: String) -> Result<String> {
    if !engine::valid_name(&name, true) {
        return Err(LogicalError::invalid(format!(
            "invalid role name {name:?}: letters, digits, '_', '-', '.' and '@'"
        )));
    }
    Ok(name)
}

impl Engine {
    pub async fn role_write(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let mut input: RoleInput = f.input();
        let name = role_name(std::mem::take(&mut input.role))?;
        let role = role_from_input(input)?;
        store::save(&*req.storage, &store::role_key(&name), &role).await?;
        Ok(None)
    }

    pub async fn role_read(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let name = f.input::<RoleInput>().role;
        Ok(
            store::load::<Role>(&*req.storage, "role", &store::role_key(&name))
                .await?
                .map(|r| Response::data(role_data(&r))),
        )
    }

    pub async fn role_delete(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        req.storage
            .delete(&store::role_key(&f.input::<RoleInput>().role))
            .await?;
        Ok(None)
    }

    pub async fn role_exists(&self, req: Request, f: Fields) -> Result<bool> {
        Ok(req
            .storage
            .get(&store::role_key(&f.input::<RoleInput>().role))
            .await?
            .is_some())
    }

    pub async fn role_list(&self, req: Request, _f: Fields) -> Result<Option<Response>> {
        let s = &*req.storage;
        let mut keys = Vec::new();
        let mut info = Map::new();
        for name in s.list(store::ROLES).await? {
            if let Some(r) = store::load::<Role>(s, "role", &store::role_key(&name)).await? {
                info.insert(name.clone(), json!({"key_type": r.key_type}));
                keys.push(name);
            }
        }
        let mut m = Map::new();
        m.insert("keys".into(), json!(keys));
        m.insert("key_info".into(), Value::Object(info));
        Ok(Some(Response::data(m)))
    }
}
