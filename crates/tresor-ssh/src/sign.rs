//! Certificates: `sign/:role` signs a public key, `issue/:role` generates a key pair and signs
//! it. Everything the certificate says is decided here against the role before the CA key
//! signs: the type (user or host), the principals (`allowed_users` with identity templates,
//! `default_user`; `allowed_domains` with bare and subdomain rules for hosts), extensions
//! and critical options (requested ones must be allowed; the role's defaults otherwise), the
//! key's type and size, the key ID, the lifetime (`ttl` within `max_ttl` and the mount's
//! maximum, backdated by `not_before_duration`), and the RSA signature hash
//! (`rsa-sha2-256` unless the role asks for `rsa-sha2-512`; SHA-1 never).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use ssh_key::certificate::{Builder, CertType};
use tresor_sdk::framework::Fields;
use tresor_sdk::identity::{self, EntityInfo};
use tresor_sdk::{LogicalError, Request, Response, Result};

use crate::engine::{self, Engine};
use crate::inputs::{CertRequest, IssueInput, SignInput};
use crate::keys::{Algo, IssuedKey, KeySpec, RsaHash, UserKey};
use crate::roles::{self, Role};

/// Renders a role list for the caller: templated entries that do not render for this
/// entity (or when there is none) are dropped, so they allow nothing.
fn render_list(list: &str, templated: bool, entity: Option<&EntityInfo>) -> Vec<String> {
    roles::split(list)
        .into_iter()
        .filter_map(|item| {
            if !templated || !identity::is_templated(&item) {
                return Some(item);
            }
            entity.and_then(|e| identity::render(&item, e).ok())
        })
        .collect()
}

fn render_one(value: &str, templated: bool, entity: Option<&EntityInfo>) -> Option<String> {
    if !templated || !identity::is_templated(value) {
        return Some(value.to_owned());
    }
    entity.and_then(|e| identity::render(value, e).ok())
}

fn host_allowed(principal: &str, role: &Role, domains: &[String]) -> bool {
    domains.iter().any(|d| {
        d == "*"
            || (role.allow_bare_domains && principal == d)
            || (role.allow_subdomains
                && principal.len() > d.len() + 1
                && principal.ends_with(d.as_str())
                && principal.as_bytes()[principal.len() - d.len() - 1] == b'.')
    })
}

/// The principals the certificate will carry.
fn principals(
    role: &Role,
    cert_type: CertType,
    requested: Vec<String>,
    entity: Option<&EntityInfo>,
) -> Result<Vec<String>> {
    let mut list = requested;
    if cert_type == CertType::User
        && list.is_empty()
        && let Some(d) = render_one(&role.default_user, role.default_user_template, entity)
        && !d.is_empty()
    {
        list.push(d);
    }
    if list.is_empty() {
        if role.allow_empty_principals {
            return Ok(list);
        }
        return Err(LogicalError::invalid(
            "empty valid principals not allowed by role",
        ));
    }
    // As in Vault: a default_user is not a principal the role allows unless it is also in
    // allowed_users, and a role allowing none refuses every requested principal.
    let (allowed, ok): (Vec<String>, &dyn Fn(&str, &[String]) -> bool) =
        if cert_type == CertType::User {
            let list = render_list(&role.allowed_users, role.allowed_users_template, entity);
            (list, &|p, allowed| {
                allowed.iter().any(|a| a == "*" || a == p)
            })
        } else {
            let list = render_list(&role.allowed_domains, role.allowed_domains_template, entity);
            (list, &|p, domains| host_allowed(p, role, domains))
        };
    if allowed.is_empty() {
        return Err(LogicalError::invalid(
            "role is not configured to allow any principals",
        ));
    }
    if let Some(p) = list.iter().find(|p| !ok(p, &allowed)) {
        return Err(LogicalError::invalid(format!(
            "{p} is not a valid value for valid_principals"
        )));
    }
    Ok(list)
}

/// Requested extensions or critical options checked against the role's allowed list, or
/// the role's defaults when none are requested. `empty_allows_all`: Vault reads an empty
/// `allowed_critical_options` as "any", an empty `allowed_extensions` as "none".
fn options(
    what: &str,
    requested: BTreeMap<String, String>,
    allowed: &str,
    empty_allows_all: bool,
    defaults: &BTreeMap<String, String>,
    template: bool,
    entity: Option<&EntityInfo>,
) -> Result<BTreeMap<String, String>> {
    if requested.is_empty() {
        let mut out = BTreeMap::new();
        for (k, v) in defaults {
            match render_one(v, template, entity) {
                Some(v) => out.insert(k.clone(), v),
                None => continue,
            };
        }
        return Ok(out);
    }
    let allowed = roles::split(allowed);
    let any = allowed.iter().any(|a| a == "*") || (empty_allows_all && allowed.is_empty());
    if !any {
        let refused: Vec<&String> = requested.keys().filter(|k| !allowed.contains(k)).collect();
        if !refused.is_empty() {
            return Err(LogicalError::invalid(format!(
                "{what} {refused:?} are not on allowed list"
            )));
        }
    }
    Ok(requested)
}

fn check_key(role: &Role, key: &UserKey) -> Result<()> {
    if key.kind == "rsa" && key.bits < 2048 {
        return Err(LogicalError::invalid(format!(
            "public_key is a {}-bit RSA key: RSA keys under 2048 bits are refused",
            key.bits
        )));
    }
    if role.allowed_user_key_lengths.is_empty() {
        return Ok(());
    }
    match role.allowed_user_key_lengths.get(key.kind) {
        Some(sizes) if sizes.contains(&key.bits) => Ok(()),
        Some(_) => Err(LogicalError::invalid(format!(
            "public_key: {} key of {} bits is not allowed by the role's allowed_user_key_lengths",
            key.kind, key.bits
        ))),
        None => Err(LogicalError::invalid(format!(
            "public_key: key type {} is not allowed by the role's allowed_user_key_lengths",
            key.kind
        ))),
    }
}

fn key_id(role_name: &str, role: &Role, req: &Request, f: &CertRequest, key: &UserKey) -> String {
    let requested = &f.key_id;
    if role.allow_user_key_ids && !requested.is_empty() {
        return requested.clone();
    }
    let format = if role.key_id_format.is_empty() {
        "vault-{{token_display_name}}-{{public_key_hash}}"
    } else {
        role.key_id_format.as_str()
    };
    format
        .replace("{{token_display_name}}", &req.caller.display_name)
        .replace("{{role_name}}", role_name)
        .replace("{{public_key_hash}}", &key.hash_hex())
}

/// What a certificate will be made of, decided before anything is generated.
struct Plan {
    role_name: String,
    role: Role,
    cert_type: CertType,
    principals: Vec<String>,
    extensions: BTreeMap<String, String>,
    critical_options: BTreeMap<String, String>,
    ttl: u64,
}

fn plan(role_name: String, role: Role, req: &Request, f: &CertRequest) -> Result<Plan> {
    if role.key_type != "ca" {
        return Err(LogicalError::invalid(format!(
            "role {role_name:?} has key_type {:?}: only ca roles sign keys",
            role.key_type
        )));
    }
    let cert_type = match f.cert_type.trim() {
        "" | "user" => CertType::User,
        "host" => CertType::Host,
        other => {
            return Err(LogicalError::invalid(format!(
                "cert_type must be either 'user' or 'host', not {other:?}"
            )));
        }
    };
    if cert_type == CertType::User && !role.allow_user_certificates {
        return Err(LogicalError::invalid(
            "cert_type 'user' is not allowed by role",
        ));
    }
    if cert_type == CertType::Host && !role.allow_host_certificates {
        return Err(LogicalError::invalid(
            "cert_type 'host' is not allowed by role",
        ));
    }
    let entity = req.caller.entity.as_deref();
    let principals = principals(&role, cert_type, f.valid_principals.clone(), entity)?;
    let extensions = options(
        "extensions",
        f.extensions.clone(),
        &role.allowed_extensions,
        false,
        &role.default_extensions,
        role.default_extensions_template,
        entity,
    )?;
    let critical_options = options(
        "critical options",
        f.critical_options.clone(),
        &role.allowed_critical_options,
        true,
        &role.default_critical_options,
        false,
        entity,
    )?;
    let requested = f.ttl.as_secs();
    let mut ttl = if requested > 0 {
        requested
    } else if role.ttl > 0 {
        role.ttl
    } else {
        req.mount.default_lease_ttl.as_secs()
    };
    let max = if role.max_ttl > 0 {
        role.max_ttl
    } else {
        req.mount.max_lease_ttl.as_secs()
    };
    if max > 0 {
        ttl = ttl.min(max);
    }
    Ok(Plan {
        role_name,
        role,
        cert_type,
        principals,
        extensions,
        critical_options,
        ttl,
    })
}

impl Engine {
    /// Signs `key` as `plan` says, with the role's issuer.
    async fn sign_key(
        &self,
        req: &Request,
        f: &CertRequest,
        plan: Plan,
        key: &UserKey,
    ) -> Result<Map<String, Value>> {
        check_key(&plan.role, key)?;
        let issuer = engine::resolve_issuer(&*req.storage, &plan.role.issuer_ref).await?;
        let ca = issuer.key()?;
        let now = self.now().max(0) as u64;
        let valid_after = now.saturating_sub(plan.role.not_before_duration);
        let valid_before = now.saturating_add(plan.ttl);
        let mut nonce = [0u8; 32];
        engine::random(&mut nonce)?;
        let mut serial = [0u8; 8];
        engine::random(&mut serial)?;
        let serial = u64::from_be_bytes(serial);
        let bad = |e: ssh_key::Error| LogicalError::internal(format!("building certificate: {e}"));
        let mut b = Builder::new(nonce.to_vec(), key.key.clone(), valid_after, valid_before)
            .map_err(bad)?;
        b.serial(serial).map_err(bad)?;
        b.cert_type(plan.cert_type).map_err(bad)?;
        b.key_id(key_id(&plan.role_name, &plan.role, req, f, key))
            .map_err(bad)?;
        if plan.principals.is_empty() {
            b.all_principals_valid().map_err(bad)?;
        }
        for p in &plan.principals {
            b.valid_principal(p.clone()).map_err(bad)?;
        }
        for (k, v) in &plan.critical_options {
            b.critical_option(k.clone(), v.clone()).map_err(bad)?;
        }
        for (k, v) in &plan.extensions {
            b.extension(k.clone(), v.clone()).map_err(bad)?;
        }
        let hash = match plan.role.algorithm_signer.as_str() {
            "rsa-sha2-512" => RsaHash::Sha512,
            _ => RsaHash::Sha256,
        };
        // An RSA signature takes milliseconds: off the runtime's workers. The others take
        // microseconds and are signed in place.
        let cert = if ca.algo == Algo::Rsa {
            tokio::task::spawn_blocking(move || b.sign(&ca.signer(hash)))
                .await
                .map_err(LogicalError::internal)?
                .map_err(bad)?
        } else {
            b.sign(&ca.signer(hash)).map_err(bad)?
        };
        let text = cert.to_openssh().map_err(bad)?;
        let mut m = Map::new();
        m.insert("issuer_id".into(), json!(issuer.id));
        // Vault's form: lowercase hex without leading zeros.
        m.insert("serial_number".into(), json!(format!("{serial:x}")));
        m.insert("signed_key".into(), json!(format!("{}\n", text.trim_end())));
        Ok(m)
    }

    pub async fn sign(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let input: SignInput = f.input();
        let cert: CertRequest = f.input();
        let role = roles::load_role(&*req.storage, &input.role).await?;
        let plan = plan(input.role, role, &req, &cert)?;
        let public = input.public_key;
        if public.trim().is_empty() {
            return Err(LogicalError::invalid("missing public_key"));
        }
        let key = UserKey::parse(&public).map_err(LogicalError::InvalidRequest)?;
        let data = self.sign_key(&req, &cert, plan, &key).await?;
        Ok(Some(Response::data(data)))
    }

    pub async fn issue(&self, req: Request, f: Fields) -> Result<Option<Response>> {
        let input: IssueInput = f.input();
        let cert: CertRequest = f.input();
        let role = roles::load_role(&*req.storage, &input.role).await?;
        let plan = plan(input.role, role, &req, &cert)?;
        let key_type = match input.key_type {
            t if t.trim().is_empty() => "rsa".to_owned(),
            t => t,
        };
        let spec = KeySpec::resolve(&key_type, input.key_bits, 3072)
            .map_err(LogicalError::InvalidRequest)?;
        // Refuse a key the role would refuse before spending time generating it.
        let bits = match spec.bits {
            0 => 256,
            b => b,
        };
        let probe = UserKey {
            key: ssh_key::public::KeyData::Ed25519(ssh_key::public::Ed25519PublicKey([0; 32])),
            kind: spec.algo.short_name(),
            ssh_name: String::new(),
            bits,
        };
        check_key(&plan.role, &probe)?;
        let generated = tokio::task::spawn_blocking(move || IssuedKey::generate(spec))
            .await
            .map_err(LogicalError::internal)?
            .map_err(LogicalError::Internal)?;
        let mut data = self.sign_key(&req, &cert, plan, &generated.public).await?;
        data.insert("private_key".into(), json!(generated.private_pem.as_str()));
        data.insert("private_key_type".into(), json!(spec.algo.short_name()));
        Ok(Some(Response::data(data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(users: &str, domains: &str) -> Role {
        Role {
            key_type: "ca".into(),
            allowed_users: users.into(),
            allowed_domains: domains.into(),
            allow_user_certificates: true,
            allow_host_certificates: true,
            ..Default::default()
        }
    }

    #[test]
    fn user_principals_must_be_allowed() {
        let mut r = role("alice,bob", "");
        r.default_user = "alice".into();
        assert_eq!(
            principals(&r, CertType::User, vec![], None).unwrap(),
            ["alice"]
        );
        assert_eq!(
            principals(&r, CertType::User, vec!["bob".into()], None).unwrap(),
            ["bob"]
        );
        let e = principals(&r, CertType::User, vec!["carol".into()], None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "carol is not a valid value for valid_principals"
        );
        let any = role("*", "");
        assert!(principals(&any, CertType::User, vec!["x".into()], None).is_ok());
        let e = principals(&any, CertType::User, vec![], None).unwrap_err();
        assert!(e.to_string().contains("empty valid principals"));
    }

    #[test]
    fn a_default_user_outside_allowed_users_is_refused() {
        // Vault's documented rule: for the CA type, default_user is a valid principal only
        // when allowed_users also has it. A role allowing nobody says so.
        let mut r = role("", "");
        r.default_user = "root".into();
        for asked in [vec![], vec!["root".to_owned()]] {
            let e = principals(&r, CertType::User, asked, None).unwrap_err();
            assert_eq!(
                e.to_string(),
                "role is not configured to allow any principals"
            );
        }
        let e = principals(&r, CertType::Host, vec!["h.example.com".into()], None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "role is not configured to allow any principals"
        );
        r.allowed_users = "ops".into();
        let e = principals(&r, CertType::User, vec![], None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "root is not a valid value for valid_principals"
        );
        r.allow_empty_principals = true;
        r.default_user = String::new();
        assert!(
            principals(&r, CertType::User, vec![], None)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn templated_users_render_for_the_callers_entity_only() {
        let mut r = role("{{identity.entity.name}},ops", "");
        r.allowed_users_template = true;
        let e = EntityInfo {
            name: "carol".into(),
            ..Default::default()
        };
        assert!(principals(&r, CertType::User, vec!["carol".into()], Some(&e)).is_ok());
        assert!(principals(&r, CertType::User, vec!["dave".into()], Some(&e)).is_err());
        // No entity: the template allows nobody, the literal entry still works.
        assert!(principals(&r, CertType::User, vec!["carol".into()], None).is_err());
        assert!(principals(&r, CertType::User, vec!["ops".into()], None).is_ok());
    }

    #[test]
    fn host_principals_follow_bare_and_subdomain_rules() {
        let mut r = role("", "example.com");
        let host = |r: &Role, p: &str| principals(r, CertType::Host, vec![p.into()], None).is_ok();
        assert!(!host(&r, "example.com"));
        assert!(!host(&r, "a.example.com"));
        r.allow_bare_domains = true;
        assert!(host(&r, "example.com"));
        assert!(!host(&r, "a.example.com"));
        r.allow_subdomains = true;
        assert!(host(&r, "a.b.example.com"));
        assert!(!host(&r, "badexample.com"));
        assert!(!host(&r, "example.com.evil"));
    }

    #[test]
    fn extensions_and_options_follow_the_allowed_lists() {
        let defaults: BTreeMap<String, String> = [("permit-pty".to_owned(), String::new())].into();
        let req: BTreeMap<String, String> =
            [("permit-X11-forwarding".to_owned(), String::new())].into();
        // Nothing requested: the defaults.
        assert_eq!(
            options(
                "extensions",
                BTreeMap::new(),
                "",
                false,
                &defaults,
                false,
                None
            )
            .unwrap(),
            defaults
        );
        // Empty allowed list: no extension may be requested; any critical option may.
        assert!(options("extensions", req.clone(), "", false, &defaults, false, None).is_err());
        assert!(
            options(
                "critical options",
                req.clone(),
                "",
                true,
                &defaults,
                false,
                None
            )
            .is_ok()
        );
        assert!(
            options(
                "extensions",
                req.clone(),
                "permit-pty",
                false,
                &defaults,
                false,
                None
            )
            .is_err()
        );
        assert!(
            options(
                "extensions",
                req.clone(),
                "*",
                false,
                &defaults,
                false,
                None
            )
            .is_ok()
        );
        assert!(
            options(
                "extensions",
                req.clone(),
                "permit-pty,permit-X11-forwarding",
                false,
                &defaults,
                false,
                None
            )
            .is_ok()
        );
    }

    #[test]
    fn key_sizes_follow_the_role() {
        let mut r = role("*", "");
        let key = |kind: &'static str, bits| UserKey {
            key: ssh_key::public::KeyData::Ed25519(ssh_key::public::Ed25519PublicKey([0; 32])),
            kind,
            ssh_name: String::new(),
            bits,
        };
        assert!(check_key(&r, &key("rsa", 1024)).is_err());
        assert!(check_key(&r, &key("rsa", 2048)).is_ok());
        r.allowed_user_key_lengths = [("rsa".to_owned(), vec![4096])].into();
        assert!(check_key(&r, &key("rsa", 2048)).is_err());
        assert!(check_key(&r, &key("rsa", 4096)).is_ok());
        assert!(check_key(&r, &key("ed25519", 256)).is_err());
    }
}
