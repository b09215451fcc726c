//! The mount's `config`: where the directory is, how users and groups are found, and the
//! token settings of its logins. Stored as one entry; `bindpass` and `client_tls_key` are
//! never shown on read. A mount that was never configured reads as the defaults (as in Vault).
//! `url` and `userattr` are kept in lower case, and the PEM fields exactly as sent, as Vault
//! keeps them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tresor_sdk::framework::{Fields, Path};
use tresor_sdk::token::TokenParams;
use tresor_sdk::{LogicalError, Operation, Response, Result, Storage};

use crate::State;

pub(crate) const KEY: &str = "config";

pub(crate) const DEFAULT_USERFILTER: &str = "({{.UserAttr}}={{.Username}})";
pub(crate) const DEFAULT_GROUPFILTER: &str =
    "(|(memberUid={{.Username}})(member={{.UserDN}})(uniqueMember={{.UserDN}}))";

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub(crate) struct Config {
    pub url: String,
    pub starttls: bool,
    pub insecure_tls: bool,
    pub tls_min_version: String,
    pub tls_max_version: String,
    pub certificate: String,
    pub client_tls_cert: String,
    pub client_tls_key: String,
    pub binddn: String,
    pub bindpass: String,
    pub userdn: String,
    pub userattr: String,
    pub userfilter: String,
    pub upndomain: String,
    pub discoverdn: bool,
    pub groupdn: String,
    pub groupfilter: String,
    pub groupattr: String,
    pub case_sensitive_names: bool,
    pub username_as_alias: bool,
    pub deny_null_bind: bool,
    pub anonymous_group_search: bool,
    /// Seconds.
    pub request_timeout: u64,
    /// Seconds.
    pub connection_timeout: u64,
    pub max_page_size: i64,
    pub dereference_aliases: String,
    pub use_token_groups: bool,
    pub enable_samaccountname_login: bool,
    pub token: TokenParams,
}

/// Never prints the bind password or the client key.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("url", &self.url)
            .field("binddn", &self.binddn)
            .field(
                "bindpass",
                &(!self.bindpass.is_empty()).then_some("<redacted>"),
            )
            .field("userdn", &self.userdn)
            .field("groupdn", &self.groupdn)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            url: "ldap://127.0.0.1".into(),
            starttls: false,
            insecure_tls: false,
            tls_min_version: "tls12".into(),
            tls_max_version: "tls12".into(),
            certificate: String::new(),
            client_tls_cert: String::new(),
            client_tls_key: String::new(),
            binddn: String::new(),
            bindpass: String::new(),
            userdn: String::new(),
            userattr: "cn".into(),
            userfilter: DEFAULT_USERFILTER.into(),
            upndomain: String::new(),
            discoverdn: false,
            groupdn: String::new(),
            groupfilter: DEFAULT_GROUPFILTER.into(),
            groupattr: "cn".into(),
            case_sensitive_names: false,
            username_as_alias: false,
            deny_null_bind: true,
            anonymous_group_search: false,
            request_timeout: 90,
            connection_timeout: 30,
            max_page_size: 0,
            dereference_aliases: "never".into(),
            use_token_groups: false,
            enable_samaccountname_login: false,
            token: TokenParams::default(),
        }
    }
}

impl Config {
    pub(crate) fn urls(&self) -> Vec<String> {
        self.url
            .split(',')
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect()
    }

    pub(crate) fn connection_timeout(&self) -> Duration {
        Duration::from_secs(self.connection_timeout.max(1))
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout.max(1))
    }

    fn show(&self) -> Map<String, Value> {
        let mut m = json!({
            "url": self.url,
            "starttls": self.starttls,
            "insecure_tls": self.insecure_tls,
            "tls_min_version": self.tls_min_version,
            "tls_max_version": self.tls_max_version,
            "certificate": self.certificate,
            "client_tls_cert": self.client_tls_cert,
            "binddn": self.binddn,
            "userdn": self.userdn,
            "userattr": self.userattr,
            "userfilter": self.userfilter,
            "upndomain": self.upndomain,
            "discoverdn": self.discoverdn,
            "groupdn": self.groupdn,
            "groupfilter": self.groupfilter,
            "groupattr": self.groupattr,
            "case_sensitive_names": self.case_sensitive_names,
            "username_as_alias": self.username_as_alias,
            "deny_null_bind": self.deny_null_bind,
            "anonymous_group_search": self.anonymous_group_search,
            "request_timeout": self.request_timeout,
            "connection_timeout": self.connection_timeout,
            "max_page_size": self.max_page_size,
            "dereference_aliases": self.dereference_aliases,
            "use_token_groups": self.use_token_groups,
            "enable_samaccountname_login": self.enable_samaccountname_login,
            "use_pre111_group_cn_behavior": false,
        })
        .as_object()
        .cloned()
        .unwrap_or_default();
        self.token.show(&mut m);
        m
    }

    /// Applies the fields a write sets, then checks the whole: a bad value is a 400 naming
    /// the field, and nothing is stored.
    fn update(&mut self, f: &Fields) -> Result<()> {
        let i: ConfigInput = f.input();
        macro_rules! set_str {
            ($($name:ident),*) => { $( if let Some(v) = i.$name { self.$name = v.trim().to_owned(); } )* };
        }
        macro_rules! set {
            ($($name:ident),*) => { $( if let Some(v) = i.$name { self.$name = v; } )* };
        }
        set_str!(
            tls_min_version,
            tls_max_version,
            binddn,
            userdn,
            userfilter,
            upndomain,
            groupdn,
            groupfilter,
            groupattr,
            dereference_aliases
        );
        // Lower case, as Vault keeps them (LDAP attribute names and URL schemes and hosts are
        // case-insensitive).
        if let Some(v) = i.url {
            self.url = v.trim().to_lowercase();
        }
        if let Some(v) = i.userattr {
            self.userattr = v.trim().to_lowercase();
        }
        // PEM exactly as sent: it reads back as the same string.
        set!(
            certificate,
            client_tls_cert,
            client_tls_key,
            bindpass,
            starttls,
            insecure_tls,
            discoverdn,
            case_sensitive_names,
            username_as_alias,
            deny_null_bind,
            anonymous_group_search,
            use_token_groups,
            enable_samaccountname_login,
            max_page_size
        );
        // Only when sent: a write without them keeps the configured timeouts.
        if let Some(d) = i.request_timeout {
            self.request_timeout = d.as_secs();
        }
        if let Some(d) = i.connection_timeout {
            self.connection_timeout = d.as_secs();
        }
        self.token.update(f)?;
        if self.userattr.is_empty() {
            self.userattr = "cn".into();
        }
        if self.groupattr.is_empty() {
            self.groupattr = "cn".into();
        }
        if self.userfilter.is_empty() {
            self.userfilter = DEFAULT_USERFILTER.into();
        }
        if self.groupfilter.is_empty() {
            self.groupfilter = DEFAULT_GROUPFILTER.into();
        }
        self.validate()
    }

    fn validate(&self) -> Result<()> {
        let urls = self.urls();
        if urls.is_empty() {
            return Err(LogicalError::invalid(
                "url: at least one LDAP URL is required",
            ));
        }
        for u in &urls {
            if !(u.starts_with("ldap://") || u.starts_with("ldaps://")) {
                return Err(LogicalError::invalid(format!(
                    "url: {u:?} is not an ldap:// or ldaps:// URL"
                )));
            }
        }
        if !self.certificate.trim().is_empty() {
            crate::directory::parse_certs(&self.certificate)
                .map_err(|e| LogicalError::invalid(format!("certificate: {e}")))?;
        }
        if self.client_tls_cert.trim().is_empty() != self.client_tls_key.trim().is_empty() {
            // Vault's wording, which clients match on.
            return Err(LogicalError::invalid(
                "both client_tls_cert and client_tls_key must be set",
            ));
        }
        if !self.client_tls_cert.trim().is_empty() {
            crate::directory::parse_certs(&self.client_tls_cert)
                .map_err(|e| LogicalError::invalid(format!("client_tls_cert: {e}")))?;
            crate::directory::parse_key(&self.client_tls_key)
                .map_err(|e| LogicalError::invalid(format!("client_tls_key: {e}")))?;
        }
        let versions = ["tls10", "tls11", "tls12", "tls13"];
        let mut rank = [0; 2];
        for (i, (name, v)) in [
            ("tls_min_version", &self.tls_min_version),
            ("tls_max_version", &self.tls_max_version),
        ]
        .into_iter()
        .enumerate()
        {
            // Vault's wording ("invalid 'tls_min_version'"), which clients match on.
            rank[i] = versions
                .iter()
                .position(|x| *x == v.as_str())
                .ok_or_else(|| {
                    LogicalError::invalid(format!(
                        "invalid '{name}': {v:?} is not one of tls10, tls11, tls12, tls13"
                    ))
                })?;
        }
        if rank[1] < rank[0] {
            return Err(LogicalError::invalid(
                "'tls_max_version' must be greater than or equal to 'tls_min_version'",
            ));
        }
        for (name, v) in [
            ("userfilter", &self.userfilter),
            ("groupfilter", &self.groupfilter),
        ] {
            if !(v.starts_with('(') && v.ends_with(')')) {
                return Err(LogicalError::invalid(format!(
                    "{name}: {v:?} is not an LDAP filter (it must be in parentheses)"
                )));
            }
        }
        if !matches!(
            self.dereference_aliases.as_str(),
            "never" | "finding" | "searching" | "always"
        ) {
            return Err(LogicalError::invalid(
                "dereference_aliases: must be never, finding, searching or always",
            ));
        }
        Ok(())
    }
}

pub(crate) async fn load(storage: &dyn Storage) -> Result<Option<Config>> {
    tresor_sdk::get_json(storage, KEY).await
}

tresor_sdk::input! {
    /// `config`: each setting changes only when sent (the token_* fields are
    /// [`TokenParams`]'s).
    pub(crate) struct ConfigInput {
        url: OptStr, "LDAP URLs, comma-separated, tried in order (ldap:// or ldaps://).";
        starttls: OptBool, "Upgrade ldap:// connections with StartTLS.";
        insecure_tls: OptBool, "Do not verify the server's certificate (testing only).";
        tls_min_version: OptStr, "Minimum TLS version (tls12 or tls13 are used).";
        tls_max_version: OptStr, "Maximum TLS version.";
        certificate: OptStr, "CA certificate(s), PEM, to verify the server.";
        client_tls_cert: OptStr, "Client certificate, PEM, for mutual TLS.";
        client_tls_key: OptStr, "Client key, PEM, for mutual TLS (never shown).";
        binddn: OptStr, "DN to bind as to search for users and groups.";
        bindpass: OptStr, "Password of binddn (never shown).";
        userdn: OptStr, "Base DN under which users are.";
        userattr: OptStr, "Attribute holding the username (default cn).";
        userfilter: OptStr, "Filter finding the user; {{.UserAttr}} and {{.Username}} are filled in.";
        upndomain: OptStr, "Bind as user@upndomain (Active Directory).";
        discoverdn: OptBool, "Find the user's DN by searching, even without binddn.";
        groupdn: OptStr, "Base DN under which groups are searched.";
        groupfilter: OptStr, "Filter finding the user's groups; {{.Username}} and {{.UserDN}} are filled in.";
        groupattr: OptStr, "Attribute naming a group (cn, or memberOf on user entries).";
        case_sensitive_names: OptBool, "Compare user and group names with case.";
        username_as_alias: OptBool, "Use the login username as the identity alias name.";
        deny_null_bind: OptBool, "Refuse empty passwords (default true).";
        anonymous_group_search: OptBool, "Search groups without binding.";
        request_timeout: OptDuration, "Timeout of each LDAP operation (default 90s).";
        connection_timeout: OptDuration, "Timeout of connecting to one URL before the next is tried (default 30s).";
        max_page_size: OptInt, "Page size of searches (0: no paging).";
        dereference_aliases: OptStr, "never, finding, searching or always.";
        use_token_groups: OptBool, "Accepted for compatibility; group search uses groupfilter.";
        enable_samaccountname_login: OptBool, "Accepted and shown for compatibility; logins with upndomain bind as user@upndomain.";
    }
}

pub(crate) fn paths() -> Vec<Path<State>> {
    let mut p = Path::<State>::new("config").input::<ConfigInput>();
    p = TokenParams::add_fields(p);
    vec![
        p.op(Operation::Read, |_, req, _| {
            Box::pin(async move {
                // Never configured: the defaults, as Vault reads them.
                let c = load(&*req.storage).await?.unwrap_or_default();
                Ok(Some(Response::data(c.show())))
            })
        })
        .op(Operation::Update, |s, req, f| {
            Box::pin(async move {
                let _w = s.writes.lock().await;
                let mut c = load(&*req.storage).await?.unwrap_or_default();
                c.update(&f)?;
                tresor_sdk::put_json(&*req.storage, KEY, &c).await?;
                Ok(None)
            })
        })
        .help(
            "Configure how the LDAP server is reached and how users and groups are found.",
            "The bind password and client key are stored behind the barrier and never shown.",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(c: &Config) -> String {
        c.validate().expect_err("refused").to_string()
    }

    #[test]
    fn tls_versions_are_checked_with_vaults_wording() {
        assert!(Config::default().validate().is_ok());
        let c = Config {
            tls_min_version: "cats".into(),
            ..Config::default()
        };
        assert!(err(&c).contains("invalid 'tls_min_version'"), "{}", err(&c));
        let c = Config {
            tls_max_version: "tls9".into(),
            ..Config::default()
        };
        assert!(err(&c).contains("invalid 'tls_max_version'"), "{}", err(&c));
        let c = Config {
            tls_min_version: "tls13".into(),
            tls_max_version: "tls12".into(),
            ..Config::default()
        };
        assert!(
            err(&c).contains("'tls_max_version' must be greater"),
            "{}",
            err(&c)
        );
        let c = Config {
            tls_min_version: "tls12".into(),
            tls_max_version: "tls13".into(),
            ..Config::default()
        };
        assert!(c.validate().is_ok());
    }

    /// A read shows every documented field, with Vault's defaults; never the secrets.
    #[test]
    fn the_defaults_show_every_documented_field() {
        let m = Config::default().show();
        for (k, v) in [
            ("url", json!("ldap://127.0.0.1")),
            ("userattr", json!("cn")),
            ("groupattr", json!("cn")),
            ("userfilter", json!(DEFAULT_USERFILTER)),
            ("groupfilter", json!(DEFAULT_GROUPFILTER)),
            ("tls_min_version", json!("tls12")),
            ("tls_max_version", json!("tls12")),
            ("deny_null_bind", json!(true)),
            ("request_timeout", json!(90)),
            ("connection_timeout", json!(30)),
            ("dereference_aliases", json!("never")),
            ("max_page_size", json!(0)),
            ("enable_samaccountname_login", json!(false)),
            ("use_token_groups", json!(false)),
            ("token_ttl", json!(0)),
            ("token_policies", json!([])),
            ("token_type", json!("default")),
        ] {
            assert_eq!(m.get(k), Some(&v), "{k}");
        }
        assert!(!m.contains_key("bindpass") && !m.contains_key("client_tls_key"));
    }
}
