//! The OTP mode's server side: `creds/:role` issues a one-time password for a user and
//! address the role allows (a leased secret; revoking the lease removes the OTP), `verify`
//! (unauthenticated: the host's helper asks) spends it exactly once, `lookup` names the
//! roles an address belongs to, and `config/zeroaddress` lists roles that accept any
//! address. OTPs are stored under their HMAC with the mount's salt, never as keys.

use std::net::IpAddr;

use aws_lc_rs::hmac;
use serde_json::{Map, json};
use tresor_sdk::cidr;
use tresor_sdk::framework::Fields;
use tresor_sdk::{LogicalError, Request, Response, Result, SecretLease, Storage};

use crate::engine::{self, Engine};
use crate::inputs::{CredsInput, LookupInput, VerifyInput, ZeroAddressInput};
use crate::roles::{self, Role};
use crate::store::{self, OtpEntry, ZeroAddress};

pub const SECRET_TYPE: &str = "otp";

async fn otp_hash(s: &dyn Storage, otp: &str) -> Result<String> {
    let salt = engine::otp_salt(s).await?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &salt);
    Ok(hex::encode(hmac::sign(&key, otp.as_bytes())))
}

async fn zero_roles(s: &dyn Storage) -> Result<Vec<String>> {
    Ok(
        store::load::<ZeroAddress>(s, "zeroaddress configuration", store::ZEROADDRESS)
            .await?
            .map(|z| z.roles.clone())
            .unwrap_or_default(),
    )
}

/// Whether `ip` belongs to the role: within its `cidr_list` (or the role is a zero-address
/// role) and outside its `exclude_cidr_list`.
fn role_has_ip(name: &str, role: &Role, ip: IpAddr, zero: &[String]) -> bool {
    let within = |list: &str| {
        cidr::parse_list(&roles::split(list))
            .map(|blocks| blocks.iter().any(|b| b.contains(ip)))
            .unwrap_or(false)
    };
    (zero.iter().any(|z| z == name) || within(&role.cidr_list)) && !within(&role.exclude_cidr_list)
}

fn parse_ip(ip: &str) -> Result<IpAddr> {
    if ip.trim().is_empty() {
        return Err(LogicalError::invalid("missing ip"));
    }
    ip.trim()
        .parse()
        .map_err(|_| LogicalError::invalid(format!("invalid IP address {ip:?}")))
}

impl Engine {
    pub async fn creds(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let s = &*req.storage;
        let CredsInput {
            role: name,
            ip,
            username,
        } = f.input();
        let role = roles::load_role(s, &name).await?;
        if role.key_type != "otp" {
            return Err(LogicalError::invalid(format!(
                "role {name:?} has key_type {:?}: creds are issued by otp roles; ca roles sign keys at sign/{name}",
                role.key_type
            )));
        }
        let ip = parse_ip(&ip)?;
        let username = match username {
            u if u.trim().is_empty() => role.default_user.clone(),
            u => u,
        };
        if username != role.default_user
            && !roles::split(&role.allowed_users)
                .iter()
                .any(|a| a == "*" || *a == username)
        {
            return Err(LogicalError::invalid(format!(
                "username {username:?} is not in the role's allowed_users"
            )));
        }
        if !role_has_ip(&name, &role, ip, &zero_roles(s).await?) {
            return Err(LogicalError::invalid(
                "Error validating IP: IP does not belong to role",
            ));
        }
        let otp = uuid::Uuid::new_v4().to_string();
        let hash = otp_hash(s, &otp).await?;
        let entry = OtpEntry {
            version: 1,
            username: username.clone(),
            ip: ip.to_string(),
            role_name: name,
        };
        store::save(s, &store::otp_key(&hash), &entry).await?;
        let mut internal = Map::new();
        internal.insert("otp_hash".into(), json!(hash));
        let mut resp = Response::json(json!({
            "ip": ip.to_string(),
            "key": otp,
            "key_type": "otp",
            "port": role.port,
            "username": username,
        }));
        resp.secret = Some(SecretLease {
            secret_type: SECRET_TYPE.into(),
            ttl: req.mount.default_lease_ttl,
            max_ttl: None,
            renewable: false,
            internal_data: internal,
        });
        Ok(Some(resp))
    }

    /// Revoking a `creds` lease deletes its OTP if it is still unused.
    pub async fn revoke_otp(&self, req: Request, _f: Fields) -> Result<Option<Response>> {
        let hash = req
            .secret
            .as_ref()
            .and_then(|s| s.internal_data.get("otp_hash"))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        if !hash.is_empty() && !hash.contains('/') {
            req.storage.delete(&store::otp_key(&hash)).await?;
        }
        Ok(None)
    }

    /// Spends an OTP: of any number of concurrent verifications of one OTP, exactly one
    /// succeeds (a conditional delete on the entry's revision decides).
    pub async fn verify(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let s = &*req.storage;
        let otp = f.input::<VerifyInput>().otp;
        if otp.trim().is_empty() {
            return Err(LogicalError::invalid("missing otp"));
        }
        let key = store::otp_key(&otp_hash(s, otp.trim()).await?);
        let not_found = || LogicalError::invalid("OTP not found");
        let (bytes, rev) = s.get_with_revision(&key).await?.ok_or_else(not_found)?;
        let entry: OtpEntry =
            tresor_sdk::record::decode("otp", &bytes).map_err(LogicalError::Internal)?;
        if !s
            .transaction_if(vec![(key.clone(), rev)], vec![(key, None)])
            .await?
        {
            return Err(not_found());
        }
        Ok(Some(Response::json(json!({
            "ip": entry.ip,
            "role_name": entry.role_name,
            "username": entry.username,
        }))))
    }

    pub async fn lookup(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let s = &*req.storage;
        let ip = parse_ip(&f.input::<LookupInput>().ip)?;
        let zero = zero_roles(s).await?;
        let mut found = Vec::new();
        for name in s.list(store::ROLES).await? {
            if let Some(role) = store::load::<Role>(s, "role", &store::role_key(&name)).await?
                && role.key_type == "otp"
                && role_has_ip(&name, &role, ip, &zero)
            {
                found.push(name);
            }
        }
        Ok(Some(Response::json(json!({"roles": found}))))
    }

    pub async fn zeroaddress_read(&self, req: Request, _f: Fields) -> Result<Option<Response>> {
        Ok(store::load::<ZeroAddress>(
            &*req.storage,
            "zeroaddress configuration",
            store::ZEROADDRESS,
        )
        .await?
        .map(|z| Response::json(json!({"roles": z.roles}))))
    }

    pub async fn zeroaddress_write(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let s = &*req.storage;
        let names = f.input::<ZeroAddressInput>().roles;
        if names.is_empty() {
            return Err(LogicalError::invalid("missing roles"));
        }
        for name in &names {
            let role = roles::load_role(s, name).await?;
            if role.key_type != "otp" {
                return Err(LogicalError::invalid(format!(
                    "role {name:?} is not an otp role"
                )));
            }
        }
        store::save(
            s,
            store::ZEROADDRESS,
            &ZeroAddress {
                version: 1,
                roles: names,
            },
        )
        .await?;
        Ok(None)
    }

    pub async fn zeroaddress_delete(&self, req: Request, _f: Fields) -> Result<Option<Response>> {
        req.storage.delete(store::ZEROADDRESS).await?;
        Ok(None)
    }
}
