//! Vault's common `token_*` fields, shared by every auth method's roles and users: one typed
//! piece that declares the fields on a path, reads them (with the legacy names Vault still
//! accepts), validates them, shows them on read, and fills a login's [`Auth`].

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::framework::{Fields, Path};
use crate::{Auth, LogicalError, Result};

/// The kind of token a login gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenType {
    /// Whatever the auth mount's `token_type` says, service tokens if it says nothing.
    #[default]
    Default,
    Service,
    Batch,
    DefaultService,
    DefaultBatch,
}

impl TokenType {
    pub fn parse(s: &str) -> Result<TokenType> {
        Ok(match s {
            "" | "default" => TokenType::Default,
            "service" => TokenType::Service,
            "batch" => TokenType::Batch,
            "default-service" => TokenType::DefaultService,
            "default-batch" => TokenType::DefaultBatch,
            other => {
                return Err(LogicalError::invalid(format!(
                    "invalid 'token_type' value {other:?}"
                )));
            }
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Default => "default",
            TokenType::Service => "service",
            TokenType::Batch => "batch",
            TokenType::DefaultService => "default-service",
            TokenType::DefaultBatch => "default-batch",
        }
    }
}

/// The `token_*` settings of a role or user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenParams {
    pub token_ttl: u64,
    pub token_max_ttl: u64,
    pub token_policies: Vec<String>,
    pub token_bound_cidrs: Vec<String>,
    pub token_explicit_max_ttl: u64,
    pub token_no_default_policy: bool,
    pub token_num_uses: i64,
    pub token_period: u64,
    pub token_type: TokenType,
}

crate::input! {
    /// The `token_*` fields as a request sent them (`None`: not sent), with the legacy names
    /// Vault still accepts next to their current ones. [`TokenParams::add_fields`] declares
    /// them on a path; a method that must know which spelling came (to warn about a legacy
    /// name) reads this input itself.
    pub struct TokenFields {
        token_ttl: OptDuration, "The initial TTL of tokens issued by this login.";
        ttl: OptDuration, "Deprecated: use the token_ name.";
        token_max_ttl: OptDuration, "The maximum lifetime of tokens issued by this login.";
        max_ttl: OptDuration, "Deprecated: use the token_ name.";
        token_policies: OptList, "Policies of tokens issued by this login.";
        policies: OptList, "Deprecated: use the token_ name.";
        token_bound_cidrs: OptList, "Client addresses (CIDR blocks) the tokens work from.";
        bound_cidrs: OptList, "Deprecated: use the token_ name.";
        token_explicit_max_ttl: OptDuration, "A hard lifetime limit renewals cannot pass.";
        token_no_default_policy: OptBool, "Do not add the default policy.";
        token_num_uses: OptInt, "How many requests a token may make (0: unlimited).";
        token_period: OptDuration, "Make the tokens periodic with this period.";
        period: OptDuration, "Deprecated: use the token_ name.";
        token_type: OptStr, "service, batch, default-service, default-batch or default.";
    }
}

impl TokenParams {
    /// Declares the fields (and their legacy names) on a path.
    pub fn add_fields<B>(p: Path<B>) -> Path<B> {
        p.input::<TokenFields>()
    }

    /// Applies the fields the request sent (a current name wins over its legacy name),
    /// validating each.
    pub fn update(&mut self, f: &Fields) -> Result<()> {
        let i: TokenFields = f.input();
        let secs = |d: Duration| d.as_secs();
        if let Some(d) = i.token_ttl.or(i.ttl) {
            self.token_ttl = secs(d);
        }
        if let Some(d) = i.token_max_ttl.or(i.max_ttl) {
            self.token_max_ttl = secs(d);
        }
        if let Some(list) = i.token_policies.or(i.policies) {
            let mut p: Vec<String> = list
                .into_iter()
                .map(|x| x.trim().to_lowercase())
                .filter(|x| !x.is_empty())
                .collect();
            p.sort();
            p.dedup();
            self.token_policies = p;
        }
        let cidrs = match (i.token_bound_cidrs, i.bound_cidrs) {
            (Some(l), _) => Some(("token_bound_cidrs", l)),
            (None, Some(l)) => Some(("bound_cidrs", l)),
            (None, None) => None,
        };
        if let Some((n, list)) = cidrs {
            crate::cidr::parse_list(&list)
                .map_err(|e| LogicalError::invalid(format!("invalid {n}: {e}")))?;
            self.token_bound_cidrs = list;
        }
        if let Some(d) = i.token_explicit_max_ttl {
            self.token_explicit_max_ttl = secs(d);
        }
        if let Some(b) = i.token_no_default_policy {
            self.token_no_default_policy = b;
        }
        if let Some(n) = i.token_num_uses {
            if n < 0 {
                return Err(LogicalError::invalid("token_num_uses cannot be negative"));
            }
            self.token_num_uses = n;
        }
        if let Some(d) = i.token_period.or(i.period) {
            self.token_period = secs(d);
        }
        if let Some(t) = i.token_type {
            self.token_type = TokenType::parse(&t)?;
        }
        if self.token_max_ttl > 0 && self.token_ttl > self.token_max_ttl {
            return Err(LogicalError::invalid(
                "'token_ttl' cannot be greater than 'token_max_ttl'",
            ));
        }
        if self.token_type == TokenType::Batch && (self.token_period > 0 || self.token_num_uses > 0)
        {
            return Err(LogicalError::invalid(
                "batch tokens cannot be periodic or have a use limit",
            ));
        }
        Ok(())
    }

    /// The fields as a read shows them.
    pub fn show(&self, m: &mut Map<String, Value>) {
        m.insert("token_ttl".into(), json!(self.token_ttl));
        m.insert("token_max_ttl".into(), json!(self.token_max_ttl));
        m.insert("token_policies".into(), json!(self.token_policies));
        m.insert("token_bound_cidrs".into(), json!(self.token_bound_cidrs));
        m.insert(
            "token_explicit_max_ttl".into(),
            json!(self.token_explicit_max_ttl),
        );
        m.insert(
            "token_no_default_policy".into(),
            json!(self.token_no_default_policy),
        );
        m.insert("token_num_uses".into(), json!(self.token_num_uses));
        m.insert("token_period".into(), json!(self.token_period));
        m.insert("token_type".into(), json!(self.token_type.as_str()));
    }

    /// The legacy names Vault still shows beside the `token_*` ones, for the settings that are
    /// set: `policies`, `ttl`, `max_ttl` and `bound_cidrs` (clients such as hvac read them).
    pub fn show_legacy(&self, m: &mut Map<String, Value>) {
        if !self.token_policies.is_empty() {
            m.insert("policies".into(), json!(self.token_policies));
        }
        if self.token_ttl > 0 {
            m.insert("ttl".into(), json!(self.token_ttl));
        }
        if self.token_max_ttl > 0 {
            m.insert("max_ttl".into(), json!(self.token_max_ttl));
        }
        if !self.token_bound_cidrs.is_empty() {
            m.insert("bound_cidrs".into(), json!(self.token_bound_cidrs));
        }
    }

    /// Fills a login's token settings. Policies are added to what the method already put in.
    pub fn populate(&self, auth: &mut Auth) {
        auth.ttl = Duration::from_secs(self.token_ttl);
        auth.max_ttl = Duration::from_secs(self.token_max_ttl);
        auth.policies.extend(self.token_policies.iter().cloned());
        auth.bound_cidrs = self.token_bound_cidrs.clone();
        auth.explicit_max_ttl = Duration::from_secs(self.token_explicit_max_ttl);
        auth.no_default_policy = self.token_no_default_policy;
        auth.num_uses = self.token_num_uses;
        auth.period = Duration::from_secs(self.token_period);
        auth.token_type = Some(self.token_type.as_str().to_owned());
        auth.renewable = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Table;
    use crate::{Operation, SpecialPaths};
    use std::sync::Arc;

    async fn parse(data: Value) -> Result<TokenParams> {
        static OUT: std::sync::Mutex<Option<TokenParams>> = std::sync::Mutex::new(None);
        let table: Table<()> = Table {
            paths: vec![TokenParams::add_fields(Path::new("role")).op(
                Operation::Update,
                |_, _, f| {
                    Box::pin(async move {
                        let mut p = TokenParams::default();
                        p.update(&f)?;
                        *OUT.lock().unwrap() = Some(p);
                        Ok(None)
                    })
                },
            )],
            special: SpecialPaths::default(),
            help: "",
        };
        let req = crate::test_support::request(Operation::Update, "role", data, "auth/x/");
        table.handle(Arc::new(()), req).await?;
        Ok(OUT.lock().unwrap().take().unwrap())
    }

    #[tokio::test]
    async fn token_fields_parse_with_legacy_names_and_validate() {
        let p = parse(
            json!({"token_ttl": "1h", "token_max_ttl": "2h", "token_policies": "B, a",
            "token_bound_cidrs": ["10.0.0.0/8"], "token_num_uses": 3, "token_type": "batch"}),
        )
        .await;
        // batch + num_uses is refused
        assert!(p.unwrap_err().to_string().contains("batch"));
        let p = parse(
            json!({"ttl": "1h", "max_ttl": "2h", "policies": "B, a", "period": "30m",
            "bound_cidrs": "127.0.0.1/32", "token_type": "default-service"}),
        )
        .await
        .unwrap();
        assert_eq!(p.token_ttl, 3600);
        assert_eq!(p.token_max_ttl, 7200);
        assert_eq!(p.token_policies, ["a", "b"]);
        assert_eq!(p.token_period, 1800);
        assert_eq!(p.token_bound_cidrs, ["127.0.0.1/32"]);
        assert_eq!(p.token_type, TokenType::DefaultService);
        // The current name wins over the legacy one.
        let p = parse(json!({"ttl": "1h", "token_ttl": "5m"}))
            .await
            .unwrap();
        assert_eq!(p.token_ttl, 300);
        for bad in [
            json!({"token_bound_cidrs": ["nope"]}),
            json!({"token_num_uses": -1}),
            json!({"token_type": "weird"}),
            json!({"token_ttl": "2h", "token_max_ttl": "1h"}),
        ] {
            assert!(parse(bad.clone()).await.is_err(), "{bad}");
        }
        let mut a = Auth::default();
        p.populate(&mut a);
        assert_eq!(a.ttl, Duration::from_secs(300));
    }
}
