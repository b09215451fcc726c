//! Revocation and CRLs: `revoke`, `revoke-with-key`, `config/crl`, `crl/rotate`,
//! `crl/rotate-delta` and every CRL fetch path, full and delta.
//!
//! Why an index: Vault keeps one CRL blob and rebuilds it from every revoked certificate's
//! entry, which stops scaling near 100,000 certificates. Here each revocation appends a
//! (serial, time) pair to its issuer's index, kept in chunks of [`store::INDEX_CHUNK`] pairs,
//! so a revocation rewrites one small chunk and a rebuild of a 10,000-entry CRL reads forty
//! chunks. Full and delta CRLs share one number sequence; the delta CRL lists the index
//! entries added since the last full CRL.
//!
//! Which CRL: issuers with the same subject and key (a reissued CA) share one CRL, index and
//! number sequence, as in Vault ([`CrlGroup`], [`issuers::crl_id`]); it is served at every
//! one of their `issuer/:ref/crl` paths and signed by one of them. A revocation is recorded
//! against the issuer that signed the certificate ([`Engine::issuer_of`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::json;
use tresor_sdk::framework::Fields;

use crate::inputs::{CrlConfigInput, CrlRest, IssuerRef, RevokeInput, RevokeKeyInput};
use tresor_sdk::{LogicalError, Request, Response, Result, Storage, get_json};

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

/// The issuers of a mount that share one CRL: the same subject and the same key.
pub(crate) struct CrlGroup {
    /// The CRL id ([`issuers::crl_id`]) that keys its index, state and signed CRLs.
    pub id: String,
    /// Sorted by issuer id.
    pub members: Vec<Arc<LoadedIssuer>>,
}

impl CrlGroup {
    /// The member that signs the group's CRLs: one holding the key, preferring one with the
    /// `crl-signing` usage, then the one valid longest (the newest reissue), then the lowest id.
    pub fn signer(&self) -> Option<&Arc<LoadedIssuer>> {
        self.members
            .iter()
            .filter(|m| m.key.is_some())
            .max_by(|a, b| {
                (a.has_usage("crl-signing"), a.cert.not_after)
                    .cmp(&(b.has_usage("crl-signing"), b.cert.not_after))
                    .then_with(|| b.entry.id.cmp(&a.entry.id))
            })
    }
}

/// Reads index entries `from..` of a CRL.
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

/// The hex serials on a CRL's index.
async fn read_index_serials(
    s: &dyn tresor_sdk::Storage,
    id: &str,
    state: &CrlState,
) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    for n in 0..state.chunks {
        out.extend(
            store::load_index_chunk(s, id, n)
                .await?
                .entries
                .into_iter()
                .map(|(serial, _)| serial),
        );
    }
    Ok(out)
}

/// Appends (hex serial, time) pairs to a CRL's index in memory; [`IndexAppend::ops`] gives
/// the writes (the chunks touched and the state) for one transaction.
struct IndexAppend {
    id: String,
    state: CrlState,
    chunks: BTreeMap<u32, IndexChunk>,
}

impl IndexAppend {
    async fn new(s: &dyn tresor_sdk::Storage, id: &str) -> Result<Self> {
        Ok(IndexAppend {
            id: id.to_owned(),
            state: store::load_or_default(s, &format!("crl-state/{id}")).await?,
            chunks: BTreeMap::new(),
        })
    }

    async fn push(
        &mut self,
        s: &dyn tresor_sdk::Storage,
        hex_serial: String,
        at: i64,
    ) -> Result<()> {
        if self.state.chunks == 0 {
            self.state.chunks = 1;
            self.chunks.insert(0, IndexChunk::default());
        }
        let mut n = self.state.chunks - 1;
        if !self.chunks.contains_key(&n) {
            let chunk = store::load_index_chunk(s, &self.id, n).await?;
            self.chunks.insert(n, chunk);
        }
        if self.chunks[&n].entries.len() >= store::INDEX_CHUNK {
            n += 1;
            self.state.chunks += 1;
            self.chunks.insert(n, IndexChunk::default());
        }
        let chunk = self.chunks.entry(n).or_default();
        chunk.v = store::RECORD_VERSION;
        chunk.entries.push((hex_serial, at));
        self.state.count += 1;
        Ok(())
    }

    fn ops(self) -> Result<Vec<(String, Option<Vec<u8>>)>> {
        let mut ops = Vec::with_capacity(self.chunks.len() + 1);
        for (n, chunk) in &self.chunks {
            ops.push((
                format!("crl-index/{}/{n:08}", self.id),
                Some(to_json(chunk)?),
            ));
        }
        ops.push((
            format!("crl-state/{}", self.id),
            Some(to_json(&self.state)?),
        ));
        Ok(ops)
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(store::internal)
}

impl Engine {
    /// Every issuer of the mount, sorted by id.
    pub(crate) async fn all_issuers(&self, req: &Request) -> Result<Vec<Arc<LoadedIssuer>>> {
        let mut ids = issuers::list_issuer_ids(&*req.storage).await?;
        ids.sort();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.load_issuer(req, &id).await?);
        }
        Ok(out)
    }

    /// The issuers sharing the CRL `crl_id`.
    pub(crate) async fn crl_group(&self, req: &Request, crl_id: &str) -> Result<CrlGroup> {
        let members = self
            .all_issuers(req)
            .await?
            .into_iter()
            .filter(|i| i.crl_id == crl_id)
            .collect();
        Ok(CrlGroup {
            id: crl_id.to_owned(),
            members,
        })
    }

    /// Every CRL of the mount with its issuers.
    pub(crate) async fn crl_groups(&self, req: &Request) -> Result<Vec<CrlGroup>> {
        let mut groups: BTreeMap<String, Vec<Arc<LoadedIssuer>>> = BTreeMap::new();
        for i in self.all_issuers(req).await? {
            groups.entry(i.crl_id.clone()).or_default().push(i);
        }
        Ok(groups
            .into_iter()
            .map(|(id, members)| CrlGroup { id, members })
            .collect())
    }

    /// Folds the per-issuer CRL records of the older layout (index, state and signed CRLs
    /// keyed by issuer id) of the group's members into the group's, once, in one transaction.
    /// Callers hold the group's CRL lock.
    async fn migrate_legacy_crls(&self, s: &dyn Storage, group: &CrlGroup) -> Result<()> {
        if s.get(&format!("crl-state/{}", group.id)).await?.is_some() {
            return Ok(());
        }
        let mut ops: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        let mut entries: Vec<(String, i64)> = Vec::new();
        let mut seen = HashSet::new();
        let mut next_number = 0;
        for m in &group.members {
            let id = &m.entry.id;
            let Some(old) = get_json::<CrlState>(s, &format!("crl-state/{id}")).await? else {
                continue;
            };
            for n in 0..old.chunks {
                for (serial, at) in store::load_index_chunk(s, id, n).await?.entries {
                    if seen.insert(serial.clone()) {
                        entries.push((serial, at));
                    }
                }
                ops.push((format!("crl-index/{id}/{n:08}"), None));
            }
            next_number = next_number.max(old.next_number);
            for k in [
                format!("crl-state/{id}"),
                CrlKind::Full.key(id),
                CrlKind::Delta.key(id),
            ] {
                ops.push((k, None));
            }
        }
        if ops.is_empty() {
            return Ok(());
        }
        entries.sort_by_key(|e| e.1);
        // Numbering continues; the first CRL built from here is a full one listing all.
        let mut state = CrlState {
            v: store::RECORD_VERSION,
            next_number,
            count: entries.len() as u64,
            ..Default::default()
        };
        for (n, part) in entries.chunks(store::INDEX_CHUNK).enumerate() {
            let chunk = IndexChunk {
                v: store::RECORD_VERSION,
                entries: part.to_vec(),
            };
            ops.push((
                format!("crl-index/{}/{n:08}", group.id),
                Some(serde_json::to_vec(&chunk).map_err(store::internal)?),
            ));
            state.chunks += 1;
        }
        ops.push((
            format!("crl-state/{}", group.id),
            Some(serde_json::to_vec(&state).map_err(store::internal)?),
        ));
        s.transaction(ops).await
    }

    /// Signs and stores a CRL of `group`. Callers hold the group's CRL lock.
    async fn build_crl(&self, req: &Request, group: &CrlGroup, kind: CrlKind) -> Result<Vec<u8>> {
        let s = &*req.storage;
        let id = &group.id;
        let issuer = group
            .signer()
            .ok_or_else(|| bad(format!("no issuer holds the key to sign crl {id}")))?;
        self.migrate_legacy_crls(s, group).await?;
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
                state.count_at_delta = state.count;
                state.last_full = now;
                (entries, None)
            }
            CrlKind::Delta => {
                if state.base_number == 0 {
                    return Err(bad("no full crl has been built yet for this issuer"));
                }
                state.last_delta = now;
                state.delta_base = state.base_number;
                state.count_at_delta = state.count;
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
        // The CRL and the state that numbers it, in one commit: a crash between them would
        // reuse a CRL number for different contents.
        s.transaction(vec![
            (kind.key(id), Some(der.clone())),
            (format!("crl-state/{id}"), Some(to_json(&state)?)),
        ])
        .await?;
        Ok(der)
    }

    /// Rebuilds the full CRL (and, when delta CRLs are on, an empty delta after it).
    pub(crate) async fn rebuild_crls(&self, req: &Request, group: &CrlGroup) -> Result<()> {
        let _g = self.lock(req, &format!("crl/{}", group.id)).await;
        self.build_crl(req, group, CrlKind::Full).await?;
        let cfg: CrlConfig = store::load_or_default(&*req.storage, "config/crl").await?;
        if cfg.enable_delta {
            self.build_crl(req, group, CrlKind::Delta).await?;
        }
        Ok(())
    }

    /// The current CRL of an issuer (the one it shares with every issuer of its subject and
    /// key), built first when missing or (with `auto_rebuild`) due.
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
        if issuer.key.is_none() {
            // Vault's wording: CRLs belong to issuers that hold a key in this mount.
            return Err(LogicalError::NotFound(format!(
                "unable to find crl for issuer: id:{}/ref:{reference}",
                issuer.entry.id
            )));
        }
        let id = &issuer.crl_id;
        let cfg: CrlConfig = store::load_or_default(s, "config/crl").await?;
        let now = self.now();
        let state: CrlState = store::load_or_default(s, &format!("crl-state/{id}")).await?;
        let stored = s.get(&kind.key(id)).await?;
        // Besides expiry: a CRL that should list every revocation at once (full without
        // auto_rebuild, delta with enable_delta) but lags the index is one whose revocation
        // crashed before it was signed; rebuild it rather than serve it stale.
        let due = match kind {
            CrlKind::Full => {
                (cfg.auto_rebuild
                    && state.last_full + cfg.expiry as i64 - cfg.auto_rebuild_grace_period as i64
                        <= now)
                    || (!cfg.auto_rebuild && !cfg.disable && state.count != state.count_at_full)
            }
            CrlKind::Delta => {
                state.delta_base != state.base_number
                    || (state.count > state.count_at_full
                        && state.last_delta + cfg.delta_rebuild_interval as i64 <= now)
                    || (cfg.enable_delta && !cfg.disable && state.count != state.count_at_delta)
            }
        };
        if let Some(der) = stored.filter(|_| !due) {
            return Ok(der);
        }
        let group = self.crl_group(req, id).await?;
        let _g = self.lock(req, &format!("crl/{id}")).await;
        if kind == CrlKind::Delta {
            self.migrate_legacy_crls(s, &group).await?;
            let state: CrlState = store::load_or_default(s, &format!("crl-state/{id}")).await?;
            if state.base_number == 0 {
                self.build_crl(req, &group, CrlKind::Full).await?;
            }
        }
        self.build_crl(req, &group, kind).await
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
        let CrlRest { rest } = f.input();
        let (kind, form) = match rest.as_str() {
            "" | "der" => (CrlKind::Full, "der"),
            "pem" => (CrlKind::Full, "pem"),
            "delta" | "delta/der" => (CrlKind::Delta, "der"),
            "delta/pem" => (CrlKind::Delta, "pem"),
            _ => return Err(tresor_sdk::LogicalError::UnsupportedPath),
        };
        if !crate::fetch::has_default_issuer(&req).await? {
            return Ok(Some(crate::fetch::no_content()));
        }
        self.serve_crl(&req, "default", kind, form).await
    }

    /// `issuer/:ref/crl[/der|/pem]` and `issuer/:ref/crl/delta[/der|/pem]`.
    pub(crate) async fn issuer_crl_fetch(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let CrlRest { rest } = f.input();
        let IssuerRef { issuer_ref } = f.input();
        let (kind, form) = match rest.as_str() {
            "" => (CrlKind::Full, "json"),
            "der" => (CrlKind::Full, "der"),
            "pem" => (CrlKind::Full, "pem"),
            "delta" => (CrlKind::Delta, "json"),
            "delta/der" => (CrlKind::Delta, "der"),
            "delta/pem" => (CrlKind::Delta, "pem"),
            _ => return Err(tresor_sdk::LogicalError::UnsupportedPath),
        };
        self.serve_crl(&req, &issuer_ref, kind, form).await
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
        for group in self.crl_groups(&req).await? {
            if group.signer().is_none() {
                continue;
            }
            if delta {
                let _g = self.lock(&req, &format!("crl/{}", group.id)).await;
                self.migrate_legacy_crls(s, &group).await?;
                let state: CrlState =
                    store::load_or_default(s, &format!("crl-state/{}", group.id)).await?;
                if state.base_number == 0 {
                    self.build_crl(&req, &group, CrlKind::Full).await?;
                }
                self.build_crl(&req, &group, CrlKind::Delta).await?;
            } else {
                self.rebuild_crls(&req, &group).await?;
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
        let input: CrlConfigInput = f.input();
        let secs = |d: std::time::Duration| d.as_secs();
        if let Some(d) = input.expiry {
            c.expiry = secs(d);
        }
        if let Some(on) = input.disable {
            c.disable = on;
        }
        if let Some(on) = input.ocsp_disable {
            c.ocsp_disable = on;
        }
        if let Some(d) = input.ocsp_expiry {
            c.ocsp_expiry = secs(d);
        }
        if let Some(on) = input.auto_rebuild {
            c.auto_rebuild = on;
        }
        if let Some(d) = input.auto_rebuild_grace_period {
            c.auto_rebuild_grace_period = secs(d);
        }
        if let Some(on) = input.enable_delta {
            c.enable_delta = on;
        }
        if let Some(d) = input.delta_rebuild_interval {
            c.delta_rebuild_interval = secs(d);
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
            for group in self.crl_groups(&req).await? {
                if group.signer().is_some() {
                    self.rebuild_crls(&req, &group).await?;
                }
            }
        }
        self.config_crl_read(req, f).await
    }

    /// Finds the issuer of this mount that signed `cert`.
    ///
    /// Candidates carry the certificate's issuer name as their subject and a public key that
    /// verifies its signature. Issuers sharing subject and key (a reissued CA) all verify, so
    /// the choice among them is: the issuer recorded when this mount issued the certificate
    /// (`stored`: `cert` is the mount's stored copy), else one whose subject key identifier is
    /// the certificate's authority key identifier, whose validity covers the certificate's
    /// NotBefore, holding a key, the newest, the lowest id. They share one CRL, so the choice
    /// decides only the `issuer_id` reported.
    pub(crate) async fn issuer_of(
        &self,
        req: &Request,
        cert: &x509::CertInfo,
        stored: bool,
    ) -> Result<Option<Arc<LoadedIssuer>>> {
        let recorded = if stored {
            store::get_issued_by(&*req.storage, &cert.serial).await?
        } else {
            None
        };
        let candidates: Vec<Arc<LoadedIssuer>> = self
            .all_issuers(req)
            .await?
            .into_iter()
            .filter(|i| {
                i.cert.subject_der == cert.issuer_der && x509::signed_by(&cert.der, &i.cert.der)
            })
            .collect();
        if let Some(r) = recorded
            && let Some(i) = candidates.iter().find(|i| i.entry.id == r)
        {
            return Ok(Some(i.clone()));
        }
        let rank = |i: &LoadedIssuer| {
            (
                cert.authority_key_id.as_deref() == Some(&i.cert.subject_key_id[..]),
                i.cert.not_before <= cert.not_before && cert.not_before <= i.cert.not_after,
                i.key.is_some(),
                i.cert.not_before,
            )
        };
        Ok(candidates.into_iter().max_by(|a, b| {
            rank(a)
                .cmp(&rank(b))
                .then_with(|| b.entry.id.cmp(&a.entry.id))
        }))
    }

    pub(crate) async fn revoke(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let input: RevokeInput = f.input();
        self.revoke_cert(&req, &input.serial_number, &input.certificate, None)
            .await
    }

    pub(crate) async fn revoke_with_key(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let input: RevokeInput = f.input();
        let RevokeKeyInput { private_key: key } = f.input();
        if key.trim().is_empty() {
            return Err(bad("the private_key field is required"));
        }
        self.revoke_cert(&req, &input.serial_number, &input.certificate, Some(&key))
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
        if issuer.key.is_none() {
            return Err(bad(format!(
                "issuer {} has no private key in this mount and cannot sign a crl",
                issuer.entry.id
            )));
        }
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
        // Already revoked: record_revocation answers its time and, if a crash left it off
        // the CRL, lists it there (a retry repairs rather than short-circuits).
        let key = format!("revoked/{}", store::serial_key(&serial));
        let revoked = s.get(&key).await?.is_some();
        let now = self.now();
        if !revoked && cert.not_after < now {
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

    /// Records `serial` as revoked by `issuer` (its entry, the index of the CRL the issuer
    /// shares, the CRLs) and returns the revocation time. `store_der` also stores the
    /// certificate (one supplied by a caller, not issued here) with `issuer` as its signer.
    ///
    /// The entry, the certificate and the index (chunk and state) are written in one storage
    /// transaction, so a crash leaves either nothing or a revocation the CRL code knows of;
    /// the CRL is then signed, and a CRL that a crash left behind the index is rebuilt when
    /// next served. If it was already revoked, the earlier time is kept and the revocation is
    /// repaired instead: listed on the index if missing (a half-written revocation of an
    /// older version), and recorded against the issuer that signed it.
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
        let id = &issuer.crl_id;
        let group = self.crl_group(req, id).await?;
        let _g = self.lock(req, &format!("crl/{id}")).await;
        self.migrate_legacy_crls(s, &group).await?;
        if let Some(existing) = get_json::<RevokedEntry>(s, &key).await? {
            let at = existing.revocation_time;
            self.repair_locked(
                req,
                &group,
                vec![(serial.to_vec(), existing, issuer.entry.id.clone())],
            )
            .await?;
            return Ok(at);
        }
        let now = self.now();
        let mut ops = if store_der {
            store::issued_cert_ops(serial, der, &issuer.entry.id)?
        } else {
            vec![]
        };
        let entry = RevokedEntry {
            v: store::RECORD_VERSION,
            serial: x509::serial_colon(serial),
            revocation_time: now,
            issuer_id: issuer.entry.id.clone(),
            crl_id: id.clone(),
            not_after,
        };
        ops.push((key, Some(to_json(&entry)?)));
        let mut index = IndexAppend::new(s, id).await?;
        index.push(s, hex::encode(serial), now).await?;
        ops.extend(index.ops()?);
        s.transaction(ops).await?;
        self.sign_after_revocation(req, &group, true).await?;
        Ok(now)
    }

    /// Makes sure revocations of certificates signed by members of `group` are listed on its
    /// index and name the issuer that signed (given with each entry), then brings the CRLs up
    /// to date. Returns how many were missing from the index. Used by a retried revoke and by
    /// `tidy_revoked_cert_issuer_associations`.
    pub(crate) async fn repair_revocations(
        &self,
        req: &Request,
        group: &CrlGroup,
        found: Vec<(Vec<u8>, RevokedEntry, String)>,
    ) -> Result<usize> {
        let _g = self.lock(req, &format!("crl/{}", group.id)).await;
        self.migrate_legacy_crls(&*req.storage, group).await?;
        self.repair_locked(req, group, found).await
    }

    /// [`Self::repair_revocations`] for callers holding the group's CRL lock.
    async fn repair_locked(
        &self,
        req: &Request,
        group: &CrlGroup,
        found: Vec<(Vec<u8>, RevokedEntry, String)>,
    ) -> Result<usize> {
        let s = &*req.storage;
        let id = &group.id;
        let mut index = IndexAppend::new(s, id).await?;
        let mut listed = read_index_serials(s, id, &index.state).await?;
        let mut ops = Vec::new();
        let mut missing = 0;
        for (serial, mut entry, issuer_id) in found {
            let hex = hex::encode(&serial);
            if listed.insert(hex.clone()) {
                index.push(s, hex, entry.revocation_time).await?;
                missing += 1;
            }
            if entry.crl_id != *id || entry.issuer_id != issuer_id {
                entry.crl_id = id.clone();
                entry.issuer_id = issuer_id;
                ops.push((
                    format!("revoked/{}", store::serial_key(&serial)),
                    Some(to_json(&entry)?),
                ));
            }
        }
        if missing > 0 {
            ops.extend(index.ops()?);
        }
        if !ops.is_empty() {
            s.transaction(ops).await?;
        }
        self.sign_after_revocation(req, group, false).await?;
        Ok(missing)
    }

    /// Signs what a revocation changes: the full CRL (without `auto_rebuild`) or the delta CRL
    /// (with `enable_delta`), always when `fresh` (a new revocation), else only when it lags
    /// the index. Callers hold the group's CRL lock.
    async fn sign_after_revocation(
        &self,
        req: &Request,
        group: &CrlGroup,
        fresh: bool,
    ) -> Result<()> {
        let s = &*req.storage;
        let cfg: CrlConfig = store::load_or_default(s, "config/crl").await?;
        if cfg.disable || group.signer().is_none() {
            return Ok(());
        }
        let state: CrlState = store::load_or_default(s, &format!("crl-state/{}", group.id)).await?;
        if !cfg.auto_rebuild {
            if fresh || state.count != state.count_at_full {
                self.build_crl(req, group, CrlKind::Full).await?;
            }
        } else if cfg.enable_delta {
            if state.base_number == 0 {
                self.build_crl(req, group, CrlKind::Full).await?;
            }
            if fresh || state.base_number == 0 || state.count != state.count_at_delta {
                self.build_crl(req, group, CrlKind::Delta).await?;
            }
        }
        Ok(())
    }

    /// Removes serials from a CRL's index (tidy), compacting its chunks, and rebuilds the
    /// full CRL. `issuer_id` is a CRL id, or an issuer id of the older per-issuer layout.
    /// Callers hold no CRL lock.
    pub(crate) async fn remove_from_index(
        &self,
        req: &Request,
        issuer_id: &str,
        serials: &HashSet<String>,
    ) -> Result<()> {
        let s = &*req.storage;
        let group = self.crl_group(req, issuer_id).await?;
        let _g = self.lock(req, &format!("crl/{issuer_id}")).await;
        self.migrate_legacy_crls(s, &group).await?;
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
        if kept.len() as u64 == state.count {
            return Ok(());
        }
        // The compacted chunks, the stale ones' removal and the state: one commit.
        let mut ops = Vec::new();
        let old_chunks = state.chunks;
        let mut n = 0u32;
        for part in kept.chunks(store::INDEX_CHUNK) {
            let chunk = IndexChunk {
                v: store::RECORD_VERSION,
                entries: part.to_vec(),
            };
            ops.push((
                format!("crl-index/{issuer_id}/{n:08}"),
                Some(to_json(&chunk)?),
            ));
            n += 1;
        }
        for stale in n..old_chunks {
            ops.push((format!("crl-index/{issuer_id}/{stale:08}"), None));
        }
        state.chunks = n;
        state.count = kept.len() as u64;
        state.count_at_full = state.count_at_full.min(state.count);
        state.count_at_delta = state.count_at_delta.min(state.count);
        ops.push((format!("crl-state/{issuer_id}"), Some(to_json(&state)?)));
        s.transaction(ops).await?;
        drop(_g);
        if group.signer().is_some() {
            self.rebuild_crls(req, &group).await?;
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
