//! `certs/` and `certs/:name`: the trusted certificates ("certificate roles"). A write updates
//! the fields it sends and keeps the others (a new role starts from the defaults), as Vault's
//! does.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use tresor_sdk::framework::Fields;
use tresor_sdk::{Request, Response, Result};

use crate::inputs::{CertInput, CertNameInput};
use crate::store::{self, CertEntry};
use crate::{Engine, bad, x509};

/// A new role's defaults.
fn new_entry(name: &str) -> CertEntry {
    CertEntry {
        name: name.to_owned(),
        ocsp_max_retries: 4,
        ..Default::default()
    }
}

fn show(e: &CertEntry) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("certificate".into(), json!(e.certificate));
    m.insert("display_name".into(), json!(e.display_name));
    m.insert("allowed_names".into(), json!(e.allowed_names));
    m.insert("allowed_common_names".into(), json!(e.allowed_common_names));
    m.insert("allowed_dns_sans".into(), json!(e.allowed_dns_sans));
    m.insert("allowed_email_sans".into(), json!(e.allowed_email_sans));
    m.insert("allowed_uri_sans".into(), json!(e.allowed_uri_sans));
    m.insert(
        "allowed_organizational_units".into(),
        json!(e.allowed_organizational_units),
    );
    m.insert("required_extensions".into(), json!(e.required_extensions));
    m.insert(
        "allowed_metadata_extensions".into(),
        json!(e.allowed_metadata_extensions),
    );
    m.insert("ocsp_enabled".into(), json!(e.ocsp_enabled));
    m.insert("ocsp_ca_certificates".into(), json!(e.ocsp_ca_certificates));
    m.insert(
        "ocsp_servers_override".into(),
        json!(e.ocsp_servers_override),
    );
    m.insert("ocsp_fail_open".into(), json!(e.ocsp_fail_open));
    m.insert(
        "ocsp_query_all_servers".into(),
        json!(e.ocsp_query_all_servers),
    );
    m.insert(
        "ocsp_this_update_max_age".into(),
        json!(e.ocsp_this_update_max_age),
    );
    m.insert("ocsp_max_retries".into(), json!(e.ocsp_max_retries));
    e.token.show(&mut m);
    // Vault also shows the legacy names of settings that are set (a cert role had `period`).
    e.token.show_legacy(&mut m);
    if e.token.token_period > 0 {
        m.insert("period".into(), json!(e.token.token_period));
    }
    m
}

/// Applies the fields a write sent to `e`, validating each.
fn apply(e: &mut CertEntry, f: &Fields) -> Result<()> {
    let i: CertInput = f.input();
    if let Some(c) = i.certificate {
        e.certificate = c;
    }
    if e.certificate.trim().is_empty() {
        return Err(bad(
            "missing certificate: a PEM-encoded certificate is required",
        ));
    }
    x509::check_trusted(&e.certificate).map_err(|m| bad(format!("certificate: {m}")))?;
    if let Some(d) = i.display_name {
        e.display_name = d;
    }
    for (given, slot) in [
        (i.allowed_names, &mut e.allowed_names),
        (i.allowed_common_names, &mut e.allowed_common_names),
        (i.allowed_dns_sans, &mut e.allowed_dns_sans),
        (i.allowed_email_sans, &mut e.allowed_email_sans),
        (i.allowed_uri_sans, &mut e.allowed_uri_sans),
        (
            i.allowed_organizational_units,
            &mut e.allowed_organizational_units,
        ),
        (i.required_extensions, &mut e.required_extensions),
        (
            i.allowed_metadata_extensions,
            &mut e.allowed_metadata_extensions,
        ),
        (i.ocsp_servers_override, &mut e.ocsp_servers_override),
    ] {
        if let Some(list) = given {
            *slot = list;
        }
    }
    for r in &e.required_extensions {
        x509::check_required_extension(r).map_err(bad)?;
    }
    for oid in &e.allowed_metadata_extensions {
        if oid.is_empty() || !oid.split('.').all(|p| p.parse::<u64>().is_ok()) {
            return Err(bad(format!(
                "invalid allowed_metadata_extensions entry {oid:?}: expected an OID such as 1.3.6.1.4.1.311.20.2"
            )));
        }
    }
    for url in &e.ocsp_servers_override {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(bad(format!(
                "invalid ocsp_servers_override entry {url:?}: expected an http:// or https:// URL"
            )));
        }
    }
    if let Some(pem) = i.ocsp_ca_certificates {
        e.ocsp_ca_certificates = pem;
    }
    if !e.ocsp_ca_certificates.trim().is_empty() {
        x509::pem_certificates(&e.ocsp_ca_certificates)
            .map_err(|m| bad(format!("ocsp_ca_certificates: {m}")))?;
    }
    for (given, slot) in [
        (i.ocsp_enabled, &mut e.ocsp_enabled),
        (i.ocsp_fail_open, &mut e.ocsp_fail_open),
        (i.ocsp_query_all_servers, &mut e.ocsp_query_all_servers),
    ] {
        if let Some(b) = given {
            *slot = b;
        }
    }
    if let Some(d) = i.ocsp_this_update_max_age {
        e.ocsp_this_update_max_age = d.as_secs();
    }
    if let Some(n) = i.ocsp_max_retries {
        if n < 0 {
            return Err(bad("ocsp_max_retries cannot be negative"));
        }
        e.ocsp_max_retries = n;
    }
    // `lease` is the oldest spelling of the token TTL; the newer names win.
    let ttl_sent: tresor_sdk::token::TokenFields = f.input();
    let lease = i
        .lease
        .filter(|_| ttl_sent.token_ttl.is_none() && ttl_sent.ttl.is_none());
    if let Some(secs) = lease {
        if secs < 0 {
            return Err(bad("lease cannot be negative"));
        }
        e.token.token_ttl = secs as u64;
    }
    e.token.update(f)?;
    if e.display_name.is_empty() {
        e.display_name = e.name.clone();
    }
    Ok(())
}

impl Engine {
    pub(crate) async fn list_certs(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        Ok(Some(Response::list(
            store::cert_names(&*req.storage).await?,
        )))
    }

    pub(crate) async fn cert_exists(self: Arc<Self>, req: Request, f: Fields) -> Result<bool> {
        Ok(store::cert(&*req.storage, &f.input::<CertNameInput>().name)
            .await?
            .is_some())
    }

    pub(crate) async fn read_cert(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        Ok(store::cert(&*req.storage, &f.input::<CertNameInput>().name)
            .await?
            .map(|e| Response::data(show(&e))))
    }

    pub(crate) async fn write_cert(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let name = f.input::<CertNameInput>().name;
        let s = &*req.storage;
        let mut e = store::cert(s, &name)
            .await?
            .unwrap_or_else(|| new_entry(&name));
        e.name = name;
        apply(&mut e, &f)?;
        store::put_cert(s, &e).await?;
        Ok(None)
    }

    pub(crate) async fn delete_cert(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        req.storage
            .delete(&format!(
                "{}{}",
                store::CERT_PREFIX,
                f.input::<CertNameInput>().name
            ))
            .await?;
        Ok(None)
    }
}
