//! `login` and the renewal of the tokens it issues.
//!
//! Matching (shared by both): the roles are tried in name order (or only the one named). For
//! each certificate a role trusts, the presented chain must verify against it (`x509`), no
//! certificate of the verified path may be on a stored CRL, the leaf must meet the role's
//! constraints, and, for `ocsp_enabled` roles, the issuer's OCSP responder must not call the
//! leaf revoked. The first role that passes is the match. A refusal names the most telling
//! reason found (revoked, then OCSP trouble, then a constraint or a broken path) after Vault's
//! own words; it names no role.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Map, Value, json};
use tresor_sdk::framework::Fields;
use tresor_sdk::{Alias, Auth, Request, Response, Result};

use crate::inputs::LoginInput;
use crate::ocsp::{self, Answer};
use crate::store::{self, CertEntry};
use crate::x509::{self, PathError};
use crate::{Engine, bad};

/// Vault's answer to a certificate it does not accept.
const REFUSED: &str = "invalid certificate or no client certificate supplied";

/// A role that accepted the certificate, and the verified path (leaf first, trusted last).
pub(crate) struct Matched {
    pub entry: CertEntry,
    pub path: Vec<Vec<u8>>,
}

/// The most telling reason seen so far for refusing a certificate.
#[derive(Default)]
struct Refusal(Option<(u8, String)>);

impl Refusal {
    fn note(&mut self, rank: u8, why: impl Into<String>) {
        if self.0.as_ref().is_none_or(|(r, _)| rank > *r) {
            self.0 = Some((rank, why.into()));
        }
    }
    fn message(self) -> String {
        match self.0 {
            Some((_, why)) => format!("{REFUSED}: {why}"),
            None => REFUSED.to_owned(),
        }
    }
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn unb64(v: &Value) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str()?)
        .ok()
}

impl Engine {
    /// The first role that accepts `chain` (or the refusal message).
    pub(crate) async fn find_match(
        &self,
        req: &Request,
        chain: &[Vec<u8>],
        only: Option<&str>,
    ) -> Result<std::result::Result<Matched, String>> {
        let s = &*req.storage;
        let now = self.now();
        let names = match only {
            Some(n) => vec![n.to_owned()],
            None => store::cert_names(s).await?,
        };
        let revoked = store::revoked_serials(s).await?;
        let mut refusal = Refusal::default();
        for name in names {
            let Some(entry) = store::cert(s, &name).await? else {
                continue;
            };
            let Ok(trusted) = x509::pem_certificates(&entry.certificate) else {
                continue;
            };
            for t in &trusted {
                let path = match x509::verify_path(chain, t, now) {
                    Ok(p) => p,
                    Err(PathError::NoPath) => continue,
                    Err(PathError::Invalid(why)) => {
                        refusal.note(1, why);
                        continue;
                    }
                };
                let on_crl = path.iter().any(|d| {
                    x509::parse(d)
                        .is_ok_and(|c| revoked.contains(&x509::serial_hex(c.raw_serial())))
                });
                if on_crl {
                    refusal.note(3, "a certificate of the chain is revoked (CRL)");
                    continue;
                }
                if let Err(why) = x509::check_constraints(&path[0], &entry) {
                    refusal.note(1, why);
                    continue;
                }
                if entry.ocsp_enabled
                    && let Err((rank, why)) = self.check_ocsp(&entry, &path, now).await
                {
                    refusal.note(rank, why);
                    continue;
                }
                return Ok(Ok(Matched { entry, path }));
            }
        }
        Ok(Err(refusal.message()))
    }

    /// The OCSP check of a role. A path of one certificate (a trusted leaf) has no issuer to
    /// ask about, as in Vault.
    async fn check_ocsp(
        &self,
        e: &CertEntry,
        path: &[Vec<u8>],
        now: i64,
    ) -> std::result::Result<(), (u8, String)> {
        if path.len() < 2 {
            return Ok(());
        }
        let extra_signers = if e.ocsp_ca_certificates.trim().is_empty() {
            Vec::new()
        } else {
            x509::pem_certificates(&e.ocsp_ca_certificates).map_err(|m| (2, m))?
        };
        let settings = ocsp::Settings {
            servers_override: e.ocsp_servers_override.clone(),
            extra_signers,
            query_all: e.ocsp_query_all_servers,
            this_update_max_age: e.ocsp_this_update_max_age,
            // Stored counts are not negative; one past u32 is still "many" (the query caps
            // it), not none.
            max_retries: u32::try_from(e.ocsp_max_retries.max(0)).unwrap_or(u32::MAX),
        };
        match ocsp::query(&self.http, &path[0], &path[1], &settings, now).await {
            Ok(Answer::Good) => Ok(()),
            Ok(Answer::Revoked) => Err((3, "the certificate is revoked (OCSP)".into())),
            Ok(Answer::Unknown) | Err(_) if e.ocsp_fail_open => Ok(()),
            Ok(Answer::Unknown) => {
                Err((2, "the OCSP responder does not know the certificate".into()))
            }
            Err(why) => Err((2, format!("the OCSP check failed: {why}"))),
        }
    }

    pub(crate) async fn login(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let chain = req.connection.peer_certificates.clone();
        if chain.is_empty() {
            // Vault's words (checked against OpenBao 2.7.2).
            return Err(bad("no client certificate found"));
        }
        let name = f.input::<LoginInput>().name.trim().to_lowercase();
        let only = (!name.is_empty()).then_some(name.as_str());
        let m = self.find_match(&req, &chain, only).await?.map_err(bad)?;
        let cfg = store::config(&*req.storage).await?;
        let leaf = x509::leaf_facts(&m.path[0]).map_err(bad)?;
        let mut metadata: BTreeMap<String, String> = [
            ("cert_name", m.entry.name.clone()),
            ("common_name", leaf.common_name.clone()),
            ("serial_number", x509::serial_decimal(&leaf.serial_raw)),
            ("subject_key_id", x509::colon_hex(&leaf.subject_key_id)),
            ("authority_key_id", x509::colon_hex(&leaf.authority_key_id)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        metadata.extend(x509::metadata_extensions(
            &m.path[0],
            &m.entry.allowed_metadata_extensions,
        ));
        // What renewal needs: the role, the policies granted, and the certificates to verify
        // again (the path without the trusted certificate, which the role holds).
        let kept = if m.path.len() > 1 {
            &m.path[..m.path.len() - 1]
        } else {
            &m.path[..]
        };
        let mut internal = Map::new();
        internal.insert("cert_name".into(), json!(m.entry.name));
        internal.insert("subject_key_id".into(), json!(b64(&leaf.subject_key_id)));
        internal.insert(
            "authority_key_id".into(),
            json!(b64(&leaf.authority_key_id)),
        );
        internal.insert(
            "chain".into(),
            Value::from(kept.iter().map(|d| b64(d)).collect::<Vec<_>>()),
        );
        internal.insert("policies".into(), json!(m.entry.token.token_policies));
        let mut auth = Auth {
            display_name: m.entry.display_name.clone(),
            metadata: metadata.clone(),
            internal_data: internal,
            // Vault names a certificate login's alias by the subject's common name (checked
            // against OpenBao 2.7.2: `identity/entity` shows the alias `alice`).
            alias: Some(Alias {
                name: leaf.common_name,
                metadata: if cfg.enable_identity_alias_metadata {
                    metadata
                } else {
                    BTreeMap::new()
                },
            }),
            ..Default::default()
        };
        m.entry.token.populate(&mut auth);
        Ok(Some(Response {
            auth: Some(auth),
            ..Default::default()
        }))
    }

    /// Renewal: the role must still exist with the policies the token got, and still accept
    /// the certificate (trust, validity, constraints, CRLs, OCSP). The core does not hand a
    /// renewal the connection's certificates today, so the login's certificates (kept in the
    /// token's internal data) are checked; when a renewal does present one, it must be the
    /// login's (Vault's binding) unless `disable_binding` is set.
    pub(crate) async fn renew(self: Arc<Self>, req: Request) -> Result<Option<Response>> {
        let data = req
            .secret
            .as_ref()
            .map(|s| s.internal_data.clone())
            .unwrap_or_default();
        let name = data
            .get("cert_name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let s = &*req.storage;
        let Some(entry) = store::cert(s, &name).await? else {
            return Err(bad(format!(
                "the certificate role {name:?} no longer exists, not renewing"
            )));
        };
        let mut granted: Vec<String> = data
            .get("policies")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut now_policies = entry.token.token_policies.clone();
        granted.sort();
        now_policies.sort();
        if granted != now_policies {
            return Err(bad("policies have changed, not renewing"));
        }
        let cfg = store::config(s).await?;
        let presented = &req.connection.peer_certificates;
        let chain: Vec<Vec<u8>> = if presented.is_empty() {
            data.get("chain")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(unb64).collect())
                .unwrap_or_default()
        } else {
            if !cfg.disable_binding {
                let leaf = x509::leaf_facts(&presented[0]).map_err(bad)?;
                let same = |k: &str, v: &[u8]| data.get(k).and_then(Value::as_str) == Some(&b64(v));
                if !same("subject_key_id", &leaf.subject_key_id)
                    || !same("authority_key_id", &leaf.authority_key_id)
                {
                    return Err(bad(
                        "the client certificate of the renewal is not the one the token logged in with",
                    ));
                }
            }
            presented.clone()
        };
        if chain.is_empty() {
            return Err(bad("the token has no certificate to check, not renewing"));
        }
        if let Err(why) = self.find_match(&req, &chain, Some(&name)).await? {
            return Err(bad(format!("not renewing: {why}")));
        }
        let secs = Duration::from_secs;
        Ok(Some(Response {
            auth: Some(Auth {
                ttl: secs(entry.token.token_ttl),
                max_ttl: secs(entry.token.token_max_ttl),
                period: secs(entry.token.token_period),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }
}
