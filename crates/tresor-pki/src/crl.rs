//! Revocation and CRLs: `revoke`, `revoke-with-key`, `config/crl`, `crl/rotate`,
//! `crl/rotate-delta` and every CRL fetch path, full and delta.
//!
//! Why an index: Vault keeps one CRL blob and rebuilds it from every revoked certificate's
//! entry, which stops scaling near 100,000 certificates. Here each revocation appends a
//! (serial, time) pair to its issuer's index, kept in chunks of [`store::INDEX_CHUNK`] pairs,
//! so a revocation rewrites one small chunk and a rebuild of a 10,000-entry CRL reads forty
//! chunks. Full and delta CRLs share one number sequence; the delta CRL lists the index
//! entries added since the last full CRL.

use std::sync::Arc;

use serde_json::json;
use tresor_sdk::framework::Fields;
use tresor_sdk::{LogicalError, Request, Response, Result, get_json};

use crate::issuers::{self, LoadedIssuer, raw};
use crate::keys::PrivateKey;
use crate::store::{self, CrlConfig, CrlState, IndexChunk, RevokedEntry};
use crate::x509::{self, CrlEntry, CrlSpec};
use crate::{Engine, bad, pem};

/// Which CRL of an issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlKind {
    Full,
    Delta,
}

impl CrlKind {
    fn key(self, issuer: &str) -> String {
        match self {
            CrlKind::Full => format!("crls/{issuer}/full"),
            CrlKind::Delta => format!("crls/{issuer}/delta"),
        }
    }
}

/// Reads index entries `from..to` of an issuer.
async fn read_index(
    s: &dyn tresor_sdk::Storage,
    issuer: &str,
    state: &CrlState,
    from: u64,
) -> Result<Vec<CrlEntry>> {
    let mut out = Vec::with_capacity((state.count - from.min(state.count)) as usize);
    let first_chunk = (from / store::INDEX_CHUNK as u64) as u32;
    for n in first_chunk..state.chunks {
        let chunk = store::load_index_chunk(s, issuer, n).await?;
        let base = u64::from(n) * store::INDEX_CHUNK as u64;
        for (i, (serial, at)) in chunk.entries.iter().enumerate() {
            if base + i as u64 >= from
                && let Some(bytes) = x509::parse_serial(serial)
            {
                out.push(CrlEntry {
                    serial: bytes,
                    revoked_at: *at,
                });
            }
        }
    }
    Ok(out)
}

impl Engine {
    /// Signs and stores a CRL of `issuer`. Callers hold the issuer's CRL lock.
    async fn build_crl(
        &self,
        req: &Request,
        issuer: &LoadedIssuer,
        kind: CrlKind,
    ) -> Result<Vec<u8>> {
        let s = &*req.storage;
        let id = &issuer.entry.id;
        let cfg: CrlConfig = store::load_or_default(s, "config/crl").await?;
        let mut state: CrlState = store::load_or_default(s, &format!("crl-state/{id}")).await?;
        let now = self.now();
        if state.next_number == 0 {
            state.next_number = 1;
        }
        let number = state.next_number;
        state.next_number += 1;
        let (entries, delta_of) = match kind {
            CrlKind::Full => {
                let entries = if cfg.disable {
                    vec![]
                } else {
                    read_index(s, id, &state, 0).await?
                };
                state.base_number = number;
                state.count_at_full = state.count;
                state.last_full = now;
                (entries, None)
            }
            CrlKind::Delta => {
                if state.base_number == 0 {
                    return Err(bad("no full crl has been built yet for this issuer"));
                }
                state.last_delta = now;
                state.delta_base = state.base_number;
                (
                    read_index(s, id, &state, state.count_at_full).await?,
                    Some(state.base_number),
                )
            }
        };
        let signer = issuer.signer(0)?;
        let der = x509::build_crl(
            &CrlSpec {
                this_update: now,
                next_update: now + cfg.expiry as i64,
                number,
                delta_of,
                entries: &entries,
            },
            &signer,
        )
        .map_err(|e| bad(e.to_string()))?;
        s.put(&kind.key(id), der.clone()).await?;
        store::save(s, &format!("crl-state/{id}"), &state).await?;
        Ok(der)
    }

    /// Rebuilds the full CRL (and, when delta CRLs are on, an empty delta after it).
    pub(crate) async fn rebuild_crls(&self, req: &Request, issuer: &LoadedIssuer) -> Result<()> {
        let _g = self.lock(req, &format!("crl/{}", issuer.entry.id)).await;
        self.build_crl(req, issuer, CrlKind::Full).await?;
        let cfg: CrlConfig = store::load_or_default(&*req.storage, "config/crl").await?;
        if cfg.enable_delta {
            self.build_crl(req, issuer, CrlKind::Delta).await?;
        }
        Ok(())
    }

    /// The current CRL of an issuer, built first when missing or (with `auto_rebuild`) due.
    ///
    /// A delta CRL is served whether or not `enable_delta` is set: with delta CRLs off it is
    /// built on demand against the current full CRL (and is empty unless `auto_rebuild` let
    /// revocations pile up), so clients that always fetch one (`bao pki health-check`) get a
    /// valid, truthful CRL rather than an error. `enable_delta` decides only whether deltas
    /// are rebuilt eagerly on revocation.
    async fn current_crl(
        &self,
        req: &Request,
        issuer: &LoadedIssuer,
        reference: &str,
        kind: CrlKind,
    ) -> Result<Vec<u8>> {
        let s = &*req.storage;
        let id = &issuer.entry.id;
        if issuer.key.is_none() {
            // Vault's wording: CRLs belong to issuers that hold a key in this mount.
            return Err(LogicalError::NotFound(format!(
                "unable to find crl for issuer: id:{id}/ref:{reference}"
            )));
        }
        let cfg: CrlConfig = store::load_or_default(s, "config/crl").await?;
        let now = self.now();
        let state: CrlState = store::load_or_default(s, &format!("crl-state/{id}")).await?;
        let stored = s.get(&kind.key(id)).await?;
        let due = match kind {
            CrlKind::Full => {
                cfg.auto_rebuild
                    && state.last_full + cfg.expiry as i64 - cfg.auto_rebuild_grace_period as i64
                        <= now
            }
            CrlKind::Delta => {
                state.delta_base != state.base_number
                    || (state.count > state.count_at_full
                        && state.last_delta + cfg.delta_rebuild_interval as i64 <= now)
            }
        };
        if let Some(der) = stored.filter(|_| !due) {
            return Ok(der);
        }
        let _g = self.lock(req, &format!("crl/{id}")).await;
        if kind == CrlKind::Delta {
            let state: CrlState = store::load_or_default(s, &format!("crl-state/{id}")).await?;
            if state.base_number == 0 {
                self.build_crl(req, issuer, CrlKind::Full).await?;
            }
        }
        self.build_crl(req, issuer, kind).await
    }

    /// Serves a CRL: `form` is `der`, `pem` or `json` (`{"crl": pem}` or cert-style).
    async fn serve_crl(
        &self,
        req: &Request,
        reference: &str,
        kind: CrlKind,
        form: &str,
    ) -> Result<Option<Response>> {
        let issuer = self.issuer_by_ref(req, reference).await?;
        let der = self.current_crl(req, &issuer, reference, kind).await?;
        Ok(Some(match form {
            "der" => raw(200, "application/pkix-crl", der),
            "pem" => {
                let mut body = pem::encode("X509 CRL", &der);
                body.push('\n');
                raw(200, "application/x-pem-file", body.into_bytes())
            }
            "cert" => Response::json(json!({
                "certificate": pem::encode("X509 CRL", &der),
                "revocation_time": 0,
                "revocation_time_rfc3339": "",
                "issuer_id": issuer.entry.id,
            })),
            _ => Response::json(json!({"crl": pem::encode("X509 CRL", &der)})),
        }))
    }

    /// `crl`, `crl/pem`, `crl/delta`, `crl/delta/pem` on the default issuer.
    pub(crate) async fn crl_fetch(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let rest = f.string("rest");
        let (kind, form) = match rest.as_str() {
            "" | "der" => (CrlKind::Full, "der"),
            "pem" => (CrlKind::Full, "pem"),
            "delta" | "delta/der" => (CrlKind::Delta, "der"),
            "delta/pem" => (CrlKind::Delta, "pem"),
            _ => return Err(tresor_sdk::LogicalError::UnsupportedPath),
        };
        self.serve_crl(&req, "default", kind, form).await
    }

    /// `issuer/:ref/crl[/der|/pem]` and `issuer/:ref/crl/delta[/der|/pem]`.
    pub(crate) async fn issuer_crl_fetch(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let rest = f.string("rest");
        let (kind, form) = match rest.as_str() {
            "" => (CrlKind::Full, "json"),
            "der" => (CrlKind::Full, "der"),
            "pem" => (CrlKind::Full, "pem"),
            "delta" => (CrlKind::Delta, "json"),
            "delta/der" => (CrlKind::Delta, "der"),
            "delta/pem" => (CrlKind::Delta, "pem"),
            _ => return Err(tresor_sdk::LogicalError::UnsupportedPath),
        };
        self.serve_crl(&req, &f.string("issuer_ref"), kind, form)
            .await
    }

    /// `cert/crl` and `cert/delta-crl`.
    pub(crate) async fn cert_crl(&self, req: &Request, delta: bool) -> Result<Option<Response>> {
        let kind = if delta { CrlKind::Delta } else { CrlKind::Full };
        self.serve_crl(req, "default", kind, "cert").await
    }

    pub(crate) async fn crl_rotate(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        self.rotate(req, false).await
    }

    pub(crate) async fn crl_rotate_delta(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        self.rotate(req, true).await
    }

    async fn rotate(&self, req: Request, delta: bool) -> Result<Option<Response>> {
        let s = &*req.storage;
        let cfg: CrlConfig = store::load_or_default(s, "config/crl").await?;
        if delta && !cfg.enable_delta {
            return Err(bad("delta crls are not enabled (config/crl enable_delta)"));
        }
        for id in issuers::list_issuer_ids(s).await? {
            let issuer = self.load_issuer(&req, &id).await?;
            if issuer.key.is_none() {
                continue;
            }
            if delta {
                let _g = self.lock(&req, &format!("crl/{id}")).await;
                let state: CrlState = store::load_or_default(s, &format!("crl-state/{id}")).await?;
                if state.base_number == 0 {
                    self.build_crl(&req, &issuer, CrlKind::Full).await?;
                }
                self.build_crl(&req, &issuer, CrlKind::Delta).await?;
            } else {
                self.rebuild_crls(&req, &issuer).await?;
            }
        }
        Ok(Some(Response::json(json!({"success": true}))))
    }

    pub(crate) async fn config_crl_read(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        let c: CrlConfig = store::load_or_default(&*req.storage, "config/crl").await?;
        Ok(Some(Response::json(json!({
            "expiry": short_duration(c.expiry),
            "disable": c.disable,
            "ocsp_disable": c.ocsp_disable,
            "ocsp_expiry": short_duration(c.ocsp_expiry),
            "auto_rebuild": c.auto_rebuild,
            "auto_rebuild_grace_period": short_duration(c.auto_rebuild_grace_period),
            "enable_delta": c.enable_delta,
            "delta_rebuild_interval": short_duration(c.delta_rebuild_interval),
            "cross_cluster_revocation": false,
            "unified_crl": false,
            "unified_crl_on_existing_paths": false,
        }))))
    }

    pub(crate) async fn config_crl_write(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let s = &*req.storage;
        let mut c: CrlConfig = store::load_or_default(s, "config/crl").await?;
        let old_disable = c.disable;
        let dur = |name: &str| f.duration(name).map(|d| d.as_secs()).unwrap_or(0);
        if f.is_set("expiry") {
            c.expiry = dur("expiry");
        }
        if f.is_set("disable") {
            c.disable = f.flag("disable");
        }
        if f.is_set("ocsp_disable") {
            c.ocsp_disable = f.flag("ocsp_disable");
        }
        if f.is_set("ocsp_expiry") {
            c.ocsp_expiry = dur("ocsp_expiry");
        }
        if f.is_set("auto_rebuild") {
            c.auto_rebuild = f.flag("auto_rebuild");
        }
        if f.is_set("auto_rebuild_grace_period") {
            c.auto_rebuild_grace_period = dur("auto_rebuild_grace_period");
        }
        if f.is_set("enable_delta") {
            c.enable_delta = f.flag("enable_delta");
        }
        if f.is_set("delta_rebuild_interval") {
            c.delta_rebuild_interval = dur("delta_rebuild_interval");
        }
        if c.expiry == 0 {
            return Err(bad("expiry must be greater than zero"));
        }
        if c.auto_rebuild && c.auto_rebuild_grace_period >= c.expiry {
            return Err(bad("auto_rebuild_grace_period must be shorter than expiry"));
        }
        if c.enable_delta && !c.auto_rebuild {
            // Vault requires auto_rebuild for delta CRLs; keep its rule.
            return Err(bad("delta crls require auto_rebuild to be enabled"));
        }
        store::save(s, "config/crl", &c).await?;
        if c.disable != old_disable {
            for id in issuers::list_issuer_ids(s).await? {
                let issuer = self.load_issuer(&req, &id).await?;
                if issuer.key.is_some() {
                    self.rebuild_crls(&req, &issuer).await?;
                }
            }
        }
        self.config_crl_read(req, f).await
    }

    /// Finds the issuer in this mount that signed `cert` (by name and signature).
    ///
    /// A certificate from this mount's own store is matched by issuer name and authority key
    /// identifier (the engine wrote both); one supplied by a caller must also carry a valid
    /// signature of the issuer.
    pub(crate) async fn issuer_of(
        &self,
        req: &Request,
        cert: &x509::CertInfo,
        trusted: bool,
    ) -> Result<Option<Arc<LoadedIssuer>>> {
        for id in issuers::list_issuer_ids(&*req.storage).await? {
            let issuer = self.load_issuer(req, &id).await?;
            if issuer.cert.subject_der != cert.issuer_der {
                continue;
            }
            let aki_matches =
                cert.authority_key_id.as_deref() == Some(&issuer.cert.subject_key_id[..]);
            if (trusted && aki_matches) || x509::signed_by(&cert.der, &issuer.cert.der) {
                return Ok(Some(issuer));
            }
        }
        Ok(None)
    }

    pub(crate) async fn revoke(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        self.revoke_cert(
            &req,
            &f.string("serial_number"),
            &f.string("certificate"),
            None,
        )
        .await
    }

    pub(crate) async fn revoke_with_key(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let key = f.string("private_key");
        if key.trim().is_empty() {
            return Err(bad("the private_key field is required"));
        }
        self.revoke_cert(
            &req,
            &f.string("serial_number"),
            &f.string("certificate"),
            Some(&key),
        )
        .await
    }

    /// Revokes one certificate, given by serial or PEM; with `key_pem`, only if the key
    /// matches the certificate.
    pub(crate) async fn revoke_cert(
        &self,
        req: &Request,
        serial_in: &str,
        cert_in: &str,
        key_pem: Option<&str>,
    ) -> Result<Option<Response>> {
        let s = &*req.storage;
        if serial_in.is_empty() == cert_in.is_empty() {
            return Err(bad(
                "exactly one of serial_number or certificate must be given",
            ));
        }
        let (serial, given_der) = if !serial_in.is_empty() {
            let serial = x509::parse_serial(serial_in)
                .ok_or_else(|| bad(format!("invalid serial_number {serial_in:?}")))?;
            (serial, None)
        } else {
            let der = pem::certificates(cert_in)
                .ok()
                .and_then(|c| c.into_iter().next())
                .ok_or_else(|| bad("the certificate field holds no pem certificate"))?;
            let info = x509::parse_cert(&der).map_err(|e| bad(e.to_string()))?;
            (info.serial, Some(der))
        };
        let stored = store::get_cert(s, &serial).await?;
        let der = match (&stored, &given_der) {
            (Some(st), Some(g)) if st != g => {
                return Err(bad(
                    "the certificate does not match the stored certificate with this serial",
                ));
            }
            (Some(st), _) => st.clone(),
            (None, Some(g)) => g.clone(),
            (None, None) => {
                return Err(bad(format!(
                    "certificate with serial {} not found",
                    x509::serial_colon(&serial)
                )));
            }
        };
        let cert = x509::parse_cert(&der).map_err(|e| bad(e.to_string()))?;
        let issuer = self
            .issuer_of(req, &cert, stored.is_some())
            .await?
            .ok_or_else(|| bad("the certificate was not issued by any issuer of this mount"))?;
        // Issuers are revoked through issuer/:ref/revoke, not by putting them on their own CRL.
        for id in issuers::list_issuer_ids(s).await? {
            let e = self.load_issuer(req, &id).await?;
            if e.cert.serial == serial {
                return Err(bad(format!(
                    "adding issuer ({id}) to its own crl is not allowed"
                )));
            }
        }
        if let Some(key_pem) = key_pem {
            let key = PrivateKey::from_pem(key_pem).map_err(|e| bad(e.to_string()))?;
            if !crate::keys::same_public_key(key.spki_der(), &cert.spki_der) {
                return Err(bad("the private key does not match the certificate"));
            }
        }
        let key = format!("revoked/{}", store::serial_key(&serial));
        if let Some(existing) = get_json::<RevokedEntry>(s, &key).await? {
            return Ok(Some(revocation_response(existing.revocation_time)));
        }
        let now = self.now();
        if cert.not_after < now {
            return Ok(Some(Response::default().with_warning(
                "the certificate has expired and was not added to the crl",
            )));
        }
        let at = self
            .record_revocation(
                req,
                &issuer,
                &serial,
                &der,
                stored.is_none(),
                cert.not_after,
            )
            .await?;
        Ok(Some(revocation_response(at)))
    }

    /// Records `serial` as revoked by `issuer` (its entry, the issuer's index, the CRLs) and
    /// returns the revocation time; an earlier revocation's time if it was already revoked.
    /// `store_der` also stores the certificate (one supplied by a caller, not issued here).
    pub(crate) async fn record_revocation(
        &self,
        req: &Request,
        issuer: &LoadedIssuer,
        serial: &[u8],
        der: &[u8],
        store_der: bool,
        not_after: i64,
    ) -> Result<i64> {
        let s = &*req.storage;
        let key = format!("revoked/{}", store::serial_key(serial));
        let _g = self.lock(req, &format!("crl/{}", issuer.entry.id)).await;
        if let Some(existing) = get_json::<RevokedEntry>(s, &key).await? {
            return Ok(existing.revocation_time);
        }
        let now = self.now();
        if store_der {
            store::put_cert(s, serial, der).await?;
        }
        let entry = RevokedEntry {
            v: store::RECORD_VERSION,
            serial: x509::serial_colon(serial),
            revocation_time: now,
            issuer_id: issuer.entry.id.clone(),
            not_after,
        };
        store::save(s, &key, &entry).await?;
        // Append to the issuer's index.
        let id = &issuer.entry.id;
        let mut state: CrlState = store::load_or_default(s, &format!("crl-state/{id}")).await?;
        let mut n = state.chunks.saturating_sub(1);
        let mut chunk = if state.chunks == 0 {
            IndexChunk::default()
        } else {
            store::load_index_chunk(s, id, n).await?
        };
        if state.chunks == 0 {
            state.chunks = 1;
        } else if chunk.entries.len() >= store::INDEX_CHUNK {
            n += 1;
            state.chunks += 1;
            chunk = IndexChunk::default();
        }
        chunk.v = store::RECORD_VERSION;
        chunk.entries.push((hex::encode(serial), now));
        store::save_index_chunk(s, id, n, &chunk).await?;
        state.count += 1;
        store::save(s, &format!("crl-state/{id}"), &state).await?;
        let cfg: CrlConfig = store::load_or_default(s, "config/crl").await?;
        if !cfg.disable {
            if !cfg.auto_rebuild {
                self.build_crl(req, issuer, CrlKind::Full).await?;
            } else if cfg.enable_delta {
                let state: CrlState = store::load_or_default(s, &format!("crl-state/{id}")).await?;
                if state.base_number == 0 {
                    self.build_crl(req, issuer, CrlKind::Full).await?;
                }
                self.build_crl(req, issuer, CrlKind::Delta).await?;
            }
        }
        Ok(now)
    }

    /// Removes serials from an issuer's index (tidy), compacting its chunks, and rebuilds the
    /// full CRL. Callers hold no CRL lock.
    pub(crate) async fn remove_from_index(
        &self,
        req: &Request,
        issuer_id: &str,
        serials: &std::collections::HashSet<String>,
    ) -> Result<()> {
        let s = &*req.storage;
        let _g = self.lock(req, &format!("crl/{issuer_id}")).await;
        let mut state: CrlState =
            store::load_or_default(s, &format!("crl-state/{issuer_id}")).await?;
        let mut kept = Vec::new();
        for n in 0..state.chunks {
            let chunk = store::load_index_chunk(s, issuer_id, n).await?;
            kept.extend(
                chunk
                    .entries
                    .into_iter()
                    .filter(|(hexs, _)| !serials.contains(hexs)),
            );
        }
        let old_chunks = state.chunks;
        let mut n = 0u32;
        for part in kept.chunks(store::INDEX_CHUNK) {
            store::save_index_chunk(
                s,
                issuer_id,
                n,
                &IndexChunk {
                    v: store::RECORD_VERSION,
                    entries: part.to_vec(),
                },
            )
            .await?;
            n += 1;
        }
        for stale in n..old_chunks {
            s.delete(&format!("crl-index/{issuer_id}/{stale:08}"))
                .await?;
        }
        state.chunks = n;
        state.count = kept.len() as u64;
        state.count_at_full = state.count_at_full.min(state.count);
        store::save(s, &format!("crl-state/{issuer_id}"), &state).await?;
        drop(_g);
        if let Ok(issuer) = self.load_issuer(req, issuer_id).await
            && issuer.key.is_some()
        {
            self.rebuild_crls(req, &issuer).await?;
        }
        Ok(())
    }
}

/// A duration the way Vault echoes `config/crl` values: `72h`, `15m`, `1h30m`, `0s`.
fn short_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    for (n, unit) in [(h, 'h'), (m, 'm'), (s, 's')] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

fn revocation_response(at: i64) -> Response {
    Response::json(json!({
        "revocation_time": at,
        "revocation_time_rfc3339": crate::clock::rfc3339(at),
        "state": "revoked",
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn crl_config_durations_read_back_as_written() {
        for (secs, text) in [
            (72 * 3600, "72h"),
            (900, "15m"),
            (5400, "1h30m"),
            (0, "0s"),
            (61, "1m1s"),
        ] {
            assert_eq!(super::short_duration(secs), text);
        }
    }
}
