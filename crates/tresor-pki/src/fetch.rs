//! Reading certificates back: `ca`, `ca/pem`, `ca_chain`, `cert/ca_chain`, `cert/:serial`
//! (JSON, `raw`, `raw/pem`), `LIST certs` and `LIST certs/revoked` with `after`/`limit`
//! paging, and the mount's address book: `config/urls`, `config/cluster`, `config/acme`.

use std::sync::Arc;

use serde_json::json;
use tresor_sdk::framework::Fields;

use crate::inputs::{AcmeInput, CertPathInput, ClusterInput, PageInput, UrlsInput};
use tresor_sdk::{Request, Response, Result, get_json};

use crate::issuers::raw;
use crate::store::{self, ClusterConfig, RevokedEntry, UrlsConfig};
use crate::{Engine, bad, pem, x509};

/// Vault's answer to the unauthenticated raw fetches (`ca`, `ca/pem`, `ca_chain`, `crl...`,
/// `cert/ca/raw`) before the mount has a default issuer: an empty 204, not an error.
pub(crate) fn no_content() -> Response {
    raw(204, "", Vec::new())
}

/// Whether `config/issuers` names a default issuer.
pub(crate) async fn has_default_issuer(req: &Request) -> Result<bool> {
    #[derive(serde::Deserialize, Default)]
    struct DefaultRef {
        #[serde(default)]
        default: String,
    }
    let cfg: DefaultRef = store::load_or_default(&*req.storage, "config/issuers").await?;
    Ok(!cfg.default.is_empty())
}

/// The most keys one page of `LIST certs` returns when no `limit` is given.
pub const DEFAULT_PAGE: usize = 100_000;

impl Engine {
    /// `ca` (DER) and `ca/pem` (PEM) of the default issuer.
    pub(crate) async fn ca_fetch(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
        pem_form: bool,
    ) -> Result<Option<Response>> {
        if !has_default_issuer(&req).await? {
            return Ok(Some(no_content()));
        }
        let issuer = self.issuer_by_ref(&req, "default").await?;
        Ok(Some(if pem_form {
            let mut body = issuer.entry.certificate.clone();
            body.push('\n');
            raw(200, "application/pem-certificate-chain", body.into_bytes())
        } else {
            raw(200, "application/pkix-cert", issuer.cert.der.clone())
        }))
    }

    /// `ca_chain`: the default issuer's chain as concatenated PEM.
    pub(crate) async fn ca_chain_fetch(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        if !has_default_issuer(&req).await? {
            return Ok(Some(no_content()));
        }
        let issuer = self.issuer_by_ref(&req, "default").await?;
        let mut body = issuer.entry.ca_chain.join("\n");
        body.push('\n');
        Ok(Some(raw(
            200,
            "application/pem-certificate-chain",
            body.into_bytes(),
        )))
    }

    /// `cert/:serial`, with the special serials `ca`, `ca_chain`, `crl` and `delta-crl`.
    pub(crate) async fn cert_fetch(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let CertPathInput {
            serial: serial_in,
            rest,
        } = f.input();
        match serial_in.as_str() {
            "crl" => return self.cert_crl(&req, false).await,
            "delta-crl" => return self.cert_crl(&req, true).await,
            "ca" if rest == "raw" || rest == "raw/pem" => {
                return self.ca_fetch(req, f, rest == "raw/pem").await;
            }
            "ca" | "ca_chain" if !rest.is_empty() => {
                return Err(tresor_sdk::LogicalError::UnsupportedPath);
            }
            "ca" | "ca_chain" => {
                let issuer = self.issuer_by_ref(&req, "default").await?;
                let certificate = if serial_in == "ca" {
                    issuer.entry.certificate.clone()
                } else {
                    issuer.entry.ca_chain.join("\n")
                };
                return Ok(Some(Response::json(json!({
                    "certificate": certificate,
                    "ca_chain": issuer.entry.ca_chain,
                    "issuer_id": issuer.entry.id,
                    "revocation_time": 0,
                    "revocation_time_rfc3339": "",
                }))));
            }
            _ => {}
        }
        let serial = x509::parse_serial(&serial_in)
            .ok_or_else(|| bad(format!("invalid serial number {serial_in:?}")))?;
        let s = &*req.storage;
        let Some(der) = store::get_cert(s, &serial).await? else {
            return Ok(None);
        };
        match rest.as_str() {
            "raw" => return Ok(Some(raw(200, "application/pkix-cert", der))),
            "raw/pem" => {
                let mut body = pem::cert(&der);
                body.push('\n');
                return Ok(Some(raw(
                    200,
                    "application/pem-certificate-chain",
                    body.into_bytes(),
                )));
            }
            "" => {}
            _ => return Err(tresor_sdk::LogicalError::UnsupportedPath),
        }
        let revoked: Option<RevokedEntry> =
            get_json(s, &format!("revoked/{}", store::serial_key(&serial))).await?;
        let (rt, rt3339, issuer_id) = match &revoked {
            Some(r) => (
                r.revocation_time,
                crate::clock::rfc3339(r.revocation_time),
                r.issuer_id.clone(),
            ),
            None => {
                let info = x509::parse_cert(&der).map_err(|e| bad(e.to_string()))?;
                let issuer = self.issuer_of(&req, &info, true).await?;
                (
                    0,
                    String::new(),
                    issuer.map(|i| i.entry.id.clone()).unwrap_or_default(),
                )
            }
        };
        Ok(Some(Response::json(json!({
            "certificate": pem::cert(&der),
            "revocation_time": rt,
            "revocation_time_rfc3339": rt3339,
            "issuer_id": issuer_id,
        }))))
    }

    /// `LIST certs`: serials in colon form, paged by `after` (exclusive) and `limit`.
    pub(crate) async fn certs_list(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let PageInput { after, limit } = f.input();
        let limit = match limit {
            n if n <= 0 => DEFAULT_PAGE,
            n => n as usize,
        };
        let keys = store::list_certs(&*req.storage, &after, limit).await?;
        Ok(Some(Response::list(
            keys.iter().map(|k| k.replace('-', ":")).collect(),
        )))
    }

    /// `LIST certs/revoked`.
    pub(crate) async fn revoked_list(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let PageInput { after, limit } = f.input();
        let limit = match limit {
            n if n <= 0 => usize::MAX,
            n => n as usize,
        };
        let after = after.replace(':', "-").to_ascii_lowercase();
        let mut keys = req.storage.list("revoked/").await?;
        keys.retain(|k| !k.ends_with('/') && (after.is_empty() || k.as_str() > after.as_str()));
        keys.sort();
        keys.truncate(limit);
        Ok(Some(Response::list(
            keys.iter().map(|k| k.replace('-', ":")).collect(),
        )))
    }

    pub(crate) async fn urls_read(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        let u: UrlsConfig = store::load_or_default(&*req.storage, "config/urls").await?;
        Ok(Some(Response::json(json!({
            "issuing_certificates": u.issuing_certificates,
            "crl_distribution_points": u.crl_distribution_points,
            "ocsp_servers": u.ocsp_servers,
            "enable_templating": u.enable_templating,
        }))))
    }

    pub(crate) async fn urls_write(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let s = &*req.storage;
        let mut u: UrlsConfig = store::load_or_default(s, "config/urls").await?;
        let input: UrlsInput = f.input();
        for (name, sent, target) in [
            (
                "issuing_certificates",
                input.issuing_certificates,
                &mut u.issuing_certificates,
            ),
            (
                "crl_distribution_points",
                input.crl_distribution_points,
                &mut u.crl_distribution_points,
            ),
            ("ocsp_servers", input.ocsp_servers, &mut u.ocsp_servers),
        ] {
            if let Some(list) = sent {
                for url in &list {
                    if !valid_url(url) {
                        return Err(bad(format!("invalid url {url:?} in {name}")));
                    }
                }
                *target = list;
            }
        }
        if let Some(on) = input.enable_templating {
            u.enable_templating = on;
        }
        u.v = store::RECORD_VERSION;
        store::save(s, "config/urls", &u).await?;
        Ok(None)
    }
}

impl Engine {
    pub(crate) async fn cluster_read(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        let c: ClusterConfig = store::load_or_default(&*req.storage, "config/cluster").await?;
        Ok(Some(Response::json(json!({
            "path": c.path,
            "aia_path": c.aia_path,
        }))))
    }

    pub(crate) async fn cluster_write(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let s = &*req.storage;
        let mut c: ClusterConfig = store::load_or_default(s, "config/cluster").await?;
        let input: ClusterInput = f.input();
        for (name, sent, target) in [
            ("path", input.path, &mut c.path),
            ("aia_path", input.aia_path, &mut c.aia_path),
        ] {
            if let Some(url) = sent {
                if !url.is_empty() && !valid_url(&url) {
                    return Err(bad(format!("invalid url {url:?} in {name}")));
                }
                *target = url;
            }
        }
        c.v = store::RECORD_VERSION;
        store::save(s, "config/cluster", &c).await?;
        self.cluster_read(req, f).await
    }

    /// `config/acme`: Tresor has no ACME server, so the configuration reads as Vault's
    /// defaults with `enabled` false (clients such as `bao pki health-check` then report ACME
    /// as not enabled) and any attempt to enable it is refused.
    pub(crate) async fn acme_read(
        self: Arc<Self>,
        _req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        Ok(Some(Response::json(json!({
            "enabled": false,
            "allowed_issuers": ["*"],
            "allowed_roles": ["*"],
            "allow_role_ext_key_usage": false,
            "default_directory_policy": "sign-verbatim",
            "dns_resolver": "",
            "eab_policy": "not-required",
        }))))
    }

    pub(crate) async fn acme_write(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        if f.input::<AcmeInput>().enabled {
            return Err(bad("acme is not supported by this server"));
        }
        self.acme_read(req, f).await
    }
}

/// An absolute URL with a scheme and a host, as Vault requires in `config/urls`.
fn valid_url(u: &str) -> bool {
    let Some((scheme, rest)) = u.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !rest.is_empty()
        && !rest.starts_with('/')
        && u.is_ascii()
        && !u.contains(char::is_whitespace)
}
