//! Roles: Vault's role parameters, declared once (name, type, default, help) and used for the
//! path's fields, for parsing into [`Role`], and for reads. Writes replace a role (fields not
//! sent take their defaults, as Vault's POST does); PATCH changes only the fields sent.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tresor_sdk::framework::Fields;
use tresor_sdk::{LogicalError, Request, Response, Result, get_json};

use crate::inputs::RoleName;
use crate::keys::KeySpec;
use crate::x509;
use crate::{Engine, bad};

/// One role. Durations in seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Role {
    pub ttl: u64,
    pub max_ttl: u64,
    pub allow_localhost: bool,
    pub allowed_domains: Vec<String>,
    pub allowed_domains_template: bool,
    pub allow_bare_domains: bool,
    pub allow_subdomains: bool,
    pub allow_glob_domains: bool,
    pub allow_wildcard_certificates: bool,
    pub allow_any_name: bool,
    pub enforce_hostnames: bool,
    pub allow_ip_sans: bool,
    pub allowed_uri_sans: Vec<String>,
    pub allowed_uri_sans_template: bool,
    pub allowed_other_sans: Vec<String>,
    pub allowed_serial_numbers: Vec<String>,
    pub allowed_user_ids: Vec<String>,
    pub server_flag: bool,
    pub client_flag: bool,
    pub code_signing_flag: bool,
    pub email_protection_flag: bool,
    pub key_type: String,
    pub key_bits: i64,
    pub signature_bits: i64,
    pub use_pss: bool,
    pub key_usage: Vec<String>,
    pub ext_key_usage: Vec<String>,
    pub ext_key_usage_oids: Vec<String>,
    pub use_csr_common_name: bool,
    pub use_csr_sans: bool,
    pub ou: Vec<String>,
    pub organization: Vec<String>,
    pub country: Vec<String>,
    pub locality: Vec<String>,
    pub province: Vec<String>,
    pub street_address: Vec<String>,
    pub postal_code: Vec<String>,
    pub generate_lease: bool,
    pub no_store: bool,
    pub require_cn: bool,
    pub cn_validations: Vec<String>,
    pub policy_identifiers: Vec<String>,
    pub basic_constraints_valid_for_non_ca: bool,
    pub not_before_duration: u64,
    pub not_after: String,
    pub issuer_ref: String,
    pub allow_token_displayname: bool,
    pub serial_number_source: String,
}

impl Default for Role {
    /// Vault's defaults; the same values as the `ROLE_FIELDS` table (checked by a test).
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        Role {
            ttl: 0,
            max_ttl: 0,
            allow_localhost: true,
            allowed_domains: vec![],
            allowed_domains_template: false,
            allow_bare_domains: false,
            allow_subdomains: false,
            allow_glob_domains: false,
            allow_wildcard_certificates: true,
            allow_any_name: false,
            enforce_hostnames: true,
            allow_ip_sans: true,
            allowed_uri_sans: vec![],
            allowed_uri_sans_template: false,
            allowed_other_sans: vec![],
            allowed_serial_numbers: vec![],
            allowed_user_ids: vec![],
            server_flag: true,
            client_flag: true,
            code_signing_flag: false,
            email_protection_flag: false,
            key_type: "rsa".into(),
            key_bits: 0,
            signature_bits: 0,
            use_pss: false,
            key_usage: s(&["DigitalSignature", "KeyAgreement", "KeyEncipherment"]),
            ext_key_usage: vec![],
            ext_key_usage_oids: vec![],
            use_csr_common_name: true,
            use_csr_sans: true,
            ou: vec![],
            organization: vec![],
            country: vec![],
            locality: vec![],
            province: vec![],
            street_address: vec![],
            postal_code: vec![],
            generate_lease: false,
            no_store: false,
            require_cn: true,
            cn_validations: s(&["email", "hostname"]),
            policy_identifiers: vec![],
            basic_constraints_valid_for_non_ca: false,
            not_before_duration: 30,
            not_after: String::new(),
            issuer_ref: "default".into(),
            allow_token_displayname: false,
            serial_number_source: "json-csr".into(),
        }
    }
}

tresor_sdk::input! {
    /// Every role parameter (`roles/:name`), with Vault's default (the same values as
    /// [`Role::default`], checked by a test). A write starts from the defaults and a PATCH
    /// from the stored role; either way the fields sent replace theirs ([`RoleInput::apply`]).
    /// (`[""; 0]` is an empty list.)
    pub(crate) struct RoleInput {
        ttl: OptDuration, "default TTL of issued certificates", default = 0;
        max_ttl: OptDuration, "maximum TTL of issued certificates", default = 0;
        allow_localhost: OptBool, "allow localhost and localdomain", default = true;
        allowed_domains: OptList, "domains the role may issue for", default = [""; 0];
        allowed_domains_template: OptBool, "allowed_domains may hold identity templates ({{identity.entity.name}}, {{identity.entity.aliases.<mount>.name}}, ...), rendered for the caller's entity", default = false;
        allow_bare_domains: OptBool, "allow the allowed domains themselves", default = false;
        allow_subdomains: OptBool, "allow subdomains of the allowed domains", default = false;
        allow_glob_domains: OptBool, "treat allowed domains containing * as globs", default = false;
        allow_wildcard_certificates: OptBool, "allow wildcard names", default = true;
        allow_any_name: OptBool, "allow any name", default = false;
        enforce_hostnames: OptBool, "require valid host names", default = true;
        allow_ip_sans: OptBool, "allow IP subject alternative names", default = true;
        allowed_uri_sans: OptList, "globs of allowed URI SANs", default = [""; 0];
        allowed_uri_sans_template: OptBool, "allowed_uri_sans may hold identity templates, rendered for the caller's entity", default = false;
        allowed_other_sans: OptList, "allowed other SANs: oid;UTF8:glob, or *", default = [""; 0];
        allowed_serial_numbers: OptList, "globs of allowed subject serial numbers", default = [""; 0];
        allowed_user_ids: OptList, "allowed user ids", default = [""; 0];
        server_flag: OptBool, "add the serverAuth extended key usage", default = true;
        client_flag: OptBool, "add the clientAuth extended key usage", default = true;
        code_signing_flag: OptBool, "add the codeSigning extended key usage", default = false;
        email_protection_flag: OptBool, "add the emailProtection extended key usage", default = false;
        key_type: OptStr, "rsa, ec, ed25519 or any", default = "rsa";
        key_bits: OptInt, "key size; 0 for the type's default", default = 0;
        signature_bits: OptInt, "hash size of RSA signatures; 0 for 256", default = 0;
        use_pss: OptBool, "sign with RSA-PSS (not supported)", default = false;
        key_usage: OptList, "key usages", default = ["DigitalSignature", "KeyAgreement", "KeyEncipherment"];
        ext_key_usage: OptList, "extended key usages", default = [""; 0];
        ext_key_usage_oids: OptList, "extended key usage OIDs", default = [""; 0];
        use_csr_common_name: OptBool, "take the common name from the CSR when signing", default = true;
        use_csr_sans: OptBool, "take the SANs from the CSR when signing", default = true;
        ou: OptList, "subject OU", default = [""; 0];
        organization: OptList, "subject O", default = [""; 0];
        country: OptList, "subject C", default = [""; 0];
        locality: OptList, "subject L", default = [""; 0];
        province: OptList, "subject ST", default = [""; 0];
        street_address: OptList, "subject street address", default = [""; 0];
        postal_code: OptList, "subject postal code", default = [""; 0];
        generate_lease: OptBool, "attach a lease to issued certificates", default = false;
        no_store: OptBool, "do not store issued certificates", default = false;
        require_cn: OptBool, "require a common name", default = true;
        cn_validations: OptList, "how the common name is validated: email, hostname, disabled", default = ["email", "hostname"];
        policy_identifiers: OptList, "certificate policy OIDs", default = [""; 0];
        basic_constraints_valid_for_non_ca: OptBool, "write CA:FALSE basic constraints", default = false;
        not_before_duration: OptDuration, "backdating of NotBefore", default = 30;
        not_after: OptStr, "fixed NotAfter (RFC 3339)", default = "";
        issuer_ref: OptStr, "issuer used by this role", default = "default";
        allow_token_displayname: OptBool, "allow the token's display name as a name", default = false;
        serial_number_source: OptStr, "where the subject serial number comes from", default = "json-csr";
    }
}

impl RoleInput {
    /// Sets on `r` every parameter that was sent.
    fn apply(self, r: &mut Role) {
        macro_rules! sent {
            ($($name:ident),* $(,)?) => {
                $( if let Some(v) = self.$name { r.$name = v; } )*
            };
        }
        macro_rules! sent_secs {
            ($($name:ident),* $(,)?) => {
                $( if let Some(v) = self.$name { r.$name = v.as_secs(); } )*
            };
        }
        sent_secs!(ttl, max_ttl, not_before_duration);
        sent!(
            allow_localhost,
            allowed_domains,
            allowed_domains_template,
            allow_bare_domains,
            allow_subdomains,
            allow_glob_domains,
            allow_wildcard_certificates,
            allow_any_name,
            enforce_hostnames,
            allow_ip_sans,
            allowed_uri_sans,
            allowed_uri_sans_template,
            allowed_other_sans,
            allowed_serial_numbers,
            allowed_user_ids,
            server_flag,
            client_flag,
            code_signing_flag,
            email_protection_flag,
            key_type,
            key_bits,
            signature_bits,
            use_pss,
            key_usage,
            ext_key_usage,
            ext_key_usage_oids,
            use_csr_common_name,
            use_csr_sans,
            ou,
            organization,
            country,
            locality,
            province,
            street_address,
            postal_code,
            generate_lease,
            no_store,
            require_cn,
            cn_validations,
            policy_identifiers,
            basic_constraints_valid_for_non_ca,
            not_after,
            issuer_ref,
            allow_token_displayname,
            serial_number_source
        );
    }
}

const CN_VALIDATIONS: [&str; 3] = ["email", "hostname", "disabled"];

/// Checks a role and fills in resolved defaults (key bits, signature bits).
pub fn normalize(mut r: Role) -> Result<Role> {
    r.key_type = r.key_type.trim().to_ascii_lowercase();
    if r.key_type == "any" {
        r.key_bits = 0;
    } else {
        let spec = KeySpec::resolve(&r.key_type, r.key_bits).map_err(|e| bad(e.to_string()))?;
        r.key_bits = i64::from(spec.bits);
    }
    match r.signature_bits {
        0 => r.signature_bits = 256,
        256 | 384 | 512 => {}
        n => {
            return Err(bad(format!(
                "unsupported signature_bits {n}: expected 256, 384 or 512"
            )));
        }
    }
    if r.use_pss {
        return Err(bad("use_pss is not supported"));
    }
    if r.max_ttl > 0 && r.ttl > r.max_ttl {
        return Err(bad("ttl cannot be larger than max_ttl"));
    }
    // Templates must name something templates can name (rendering happens per request).
    for (on, list, name) in [
        (
            r.allowed_domains_template,
            &r.allowed_domains,
            "allowed_domains",
        ),
        (
            r.allowed_uri_sans_template,
            &r.allowed_uri_sans,
            "allowed_uri_sans",
        ),
    ] {
        for v in list
            .iter()
            .filter(|v| on && tresor_sdk::identity::is_templated(v))
        {
            tresor_sdk::identity::validate(v).map_err(|e| bad(format!("{name} {v:?}: {e}")))?;
        }
    }
    x509::key_usage_bits(&r.key_usage).map_err(|e| bad(e.to_string()))?;
    for n in &r.ext_key_usage {
        x509::eku_oid(n).map_err(|e| bad(e.to_string()))?;
    }
    for o in &r.ext_key_usage_oids {
        x509::parse_oid("ext_key_usage_oids", o).map_err(|e| bad(e.to_string()))?;
    }
    for o in &r.policy_identifiers {
        x509::parse_oid("policy_identifiers", o).map_err(|e| bad(e.to_string()))?;
    }
    if r.cn_validations.is_empty() {
        r.cn_validations = vec!["email".into(), "hostname".into()];
    }
    for v in &mut r.cn_validations {
        *v = v.to_ascii_lowercase();
        if !CN_VALIDATIONS.contains(&v.as_str()) {
            return Err(bad(format!("unknown cn_validations value {v:?}")));
        }
    }
    if r.cn_validations.len() > 1 && r.cn_validations.iter().any(|v| v == "disabled") {
        return Err(bad(
            "cn_validations value \"disabled\" cannot be combined with others",
        ));
    }
    if !r.not_after.is_empty() && crate::clock::parse_rfc3339(&r.not_after).is_none() {
        return Err(bad(format!(
            "invalid not_after {:?}: expected RFC 3339",
            r.not_after
        )));
    }
    for o in &r.allowed_other_sans {
        if o != "*" {
            crate::issue::parse_other_san(o, true)?;
        }
    }
    if r.issuer_ref.trim().is_empty() {
        r.issuer_ref = "default".into();
    }
    Ok(r)
}

fn valid_role_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.@".contains(c))
        && n.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A role as Vault reads it back.
pub fn role_json(r: &Role) -> Map<String, Value> {
    match serde_json::to_value(r) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

pub async fn load(req: &Request, name: &str) -> Result<Option<Role>> {
    get_json(&*req.storage, &format!("role/{name}")).await
}

impl Engine {
    pub(crate) async fn role_write(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let RoleName { name } = f.input();
        let input: RoleInput = f.input();
        if !valid_role_name(&name) {
            return Err(bad(format!("invalid role name {name:?}")));
        }
        let patch = req.operation == tresor_sdk::Operation::Patch;
        let mut role = if patch {
            load(&req, &name)
                .await?
                .ok_or_else(|| LogicalError::NotFound(format!("role {name:?} does not exist")))?
        } else {
            Role::default()
        };
        input.apply(&mut role);
        let role = normalize(role)?;
        crate::store::save(&*req.storage, &format!("role/{name}"), &role).await?;
        let _ = self;
        Ok(Some(Response::data(role_json(&role))))
    }

    pub(crate) async fn role_read(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let RoleName { name } = f.input();
        Ok(load(&req, &name)
            .await?
            .map(|r| Response::data(role_json(&r))))
    }

    pub(crate) async fn role_delete(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let RoleName { name } = f.input();
        req.storage.delete(&format!("role/{name}")).await?;
        Ok(None)
    }

    pub(crate) async fn role_list(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        let mut keys = req.storage.list("role/").await?;
        keys.retain(|k| !k.ends_with('/'));
        keys.sort();
        Ok(Some(Response::list(keys)))
    }

    pub(crate) async fn role_exists(self: Arc<Self>, req: Request, f: Fields) -> Result<bool> {
        let RoleName { name } = f.input();
        Ok(req.storage.get(&format!("role/{name}")).await?.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn input_and_struct_defaults_agree() {
        use tresor_sdk::framework::{Input, Kind};
        let mut m = Map::new();
        for f in RoleInput::fields() {
            let default = f.default.clone().unwrap();
            // Durations are documented in seconds, as the role stores them.
            assert!(f.kind != Kind::Duration || default.is_u64(), "{}", f.name);
            m.insert(f.name.into(), default);
        }
        assert_eq!(Value::Object(m), Value::Object(role_json(&Role::default())));
    }

    #[test]
    fn defaults_match_vault() {
        let r = normalize(Role::default()).unwrap();
        assert!(r.allow_localhost && r.enforce_hostnames && r.allow_ip_sans);
        assert!(r.server_flag && r.client_flag && r.require_cn);
        assert!(r.allow_wildcard_certificates && r.use_csr_common_name && r.use_csr_sans);
        assert_eq!(r.key_type, "rsa");
        assert_eq!(r.key_bits, 2048);
        assert_eq!(r.signature_bits, 256);
        assert_eq!(r.not_before_duration, 30);
        assert_eq!(r.issuer_ref, "default");
        assert_eq!(r.cn_validations, ["email", "hostname"]);
        assert_eq!(
            r.key_usage,
            ["DigitalSignature", "KeyAgreement", "KeyEncipherment"]
        );
    }

    #[test]
    fn bad_roles_are_refused_with_the_field_named() {
        let cases: &[(&str, Value, &str)] = &[
            ("key_bits", json!(1024), "key_bits"),
            ("key_type", json!("dsa"), "key_type"),
            ("signature_bits", json!(128), "signature_bits"),
            ("key_usage", json!(["Typo"]), "key_usage"),
            ("ext_key_usage", json!(["Nope"]), "ext_key_usage"),
            ("ext_key_usage_oids", json!(["x.y"]), "ext_key_usage_oids"),
            ("cn_validations", json!(["dns"]), "cn_validations"),
            ("not_after", json!("tomorrow"), "not_after"),
        ];
        for (field, value, needle) in cases {
            let mut m = role_json(&Role::default());
            m.insert((*field).into(), value.clone());
            let r: Role = serde_json::from_value(Value::Object(m)).unwrap();
            let err = normalize(r).unwrap_err().to_string();
            assert!(err.contains(needle), "{field}: {err}");
        }
        let r = Role {
            ttl: 100,
            max_ttl: 50,
            ..Role::default()
        };
        assert!(normalize(r).unwrap_err().to_string().contains("max_ttl"));
    }

    #[test]
    fn ec_256_resolves_and_any_clears_bits() {
        let mut r = Role {
            key_type: "EC".into(),
            key_bits: 0,
            ..Role::default()
        };
        assert_eq!(normalize(r.clone()).unwrap().key_bits, 256);
        r.key_type = "any".into();
        r.key_bits = 4096;
        assert_eq!(normalize(r).unwrap().key_bits, 0);
    }
}
