//! Tidy: removing expired certificates from the store and expired revocations from the
//! revocation index (`tidy`, `tidy-status`, `tidy-cancel`, `config/auto-tidy`).
//!
//! A tidy runs in the background, as Vault's does; its status lives in memory per mount.
//! Auto-tidy has no timer of its own: the engine checks on incoming requests whether the
//! interval has passed and starts a run then.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use tresor_sdk::framework::Fields;

use crate::inputs::{AutoTidyInput, TidyInput};
use tresor_sdk::{Request, Response, Result, get_json};

use crate::store::{self, AutoTidyConfig, RevokedEntry};
use crate::{Engine, bad, x509};

/// What a tidy run does.
#[derive(Debug, Clone, Default)]
pub struct TidyParams {
    pub tidy_cert_store: bool,
    pub tidy_revoked_certs: bool,
    pub tidy_revoked_cert_issuer_associations: bool,
    pub tidy_expired_issuers: bool,
    pub safety_buffer: u64,
    pub issuer_safety_buffer: u64,
}

/// The status of the last (or current) tidy of a mount.
#[derive(Debug, Clone, Default)]
pub struct TidyStatus {
    pub params: TidyParams,
    pub state: String,
    pub error: String,
    pub message: String,
    pub time_started: i64,
    pub time_finished: i64,
    pub cert_store_deleted_count: u64,
    pub revoked_cert_deleted_count: u64,
    pub current_cert_store_count: u64,
    pub current_revoked_cert_count: u64,
    pub cancel: Arc<std::sync::atomic::AtomicBool>,
}

impl TidyStatus {
    fn json(&self) -> Value {
        let t = |s: i64| {
            if s == 0 {
                Value::Null
            } else {
                json!(crate::clock::rfc3339(s))
            }
        };
        json!({
            "safety_buffer": self.params.safety_buffer,
            "issuer_safety_buffer": self.params.issuer_safety_buffer,
            "tidy_cert_store": self.params.tidy_cert_store,
            "tidy_revoked_certs": self.params.tidy_revoked_certs,
            "tidy_revoked_cert_issuer_associations": self.params.tidy_revoked_cert_issuer_associations,
            "tidy_expired_issuers": self.params.tidy_expired_issuers,
            "state": if self.state.is_empty() { "Inactive" } else { &self.state },
            "error": if self.error.is_empty() { Value::Null } else { json!(self.error) },
            "time_started": t(self.time_started),
            "time_finished": t(self.time_finished),
            "message": self.message,
            "cert_store_deleted_count": self.cert_store_deleted_count,
            "revoked_cert_deleted_count": self.revoked_cert_deleted_count,
            "missing_issuer_cert_count": 0,
            "current_cert_store_count": self.current_cert_store_count,
            "current_revoked_cert_count": self.current_revoked_cert_count,
        })
    }
}

fn params_from(f: TidyInput) -> TidyParams {
    TidyParams {
        tidy_cert_store: f.tidy_cert_store,
        tidy_revoked_certs: f.tidy_revoked_certs,
        tidy_revoked_cert_issuer_associations: f.tidy_revoked_cert_issuer_associations,
        tidy_expired_issuers: f.tidy_expired_issuers,
        safety_buffer: f.safety_buffer.as_secs(),
        issuer_safety_buffer: f.issuer_safety_buffer.as_secs(),
    }
}

impl Engine {
    pub(crate) async fn tidy(self: Arc<Self>, req: Request, f: Fields) -> Result<Option<Response>> {
        let params = params_from(f.input());
        // Vault's tidy operations all default to off: a tidy that names none runs with nothing
        // to do, and the answer says so instead of announcing work.
        let nothing = !params.tidy_cert_store
            && !params.tidy_revoked_certs
            && !params.tidy_expired_issuers
            && !params.tidy_revoked_cert_issuer_associations;
        self.start_tidy(&req, params)?;
        // Started in the background either way: 202 Accepted, as Vault answers.
        Ok(Some(Response::default().accepted().with_warning(if nothing {
            "This tidy enables no operation and will do nothing: set at least one of tidy_cert_store, tidy_revoked_certs, tidy_revoked_cert_issuer_associations or tidy_expired_issuers."
        } else {
            tresor_sdk::TIDY_STARTED
        })))
    }

    /// Starts a tidy in the background unless one is running.
    pub(crate) fn start_tidy(self: &Arc<Self>, req: &Request, params: TidyParams) -> Result<()> {
        let mount = self.mount_id(req);
        let status = {
            let mut map = self.tidy.lock();
            if map.get(&mount).is_some_and(|s| s.state == "Running") {
                return Err(bad("a tidy operation is already in progress"));
            }
            let status = TidyStatus {
                params: params.clone(),
                state: "Running".into(),
                time_started: self.now(),
                ..Default::default()
            };
            map.insert(mount.clone(), status.clone());
            status
        };
        let engine = self.clone();
        let req = req.clone();
        tokio::spawn(async move {
            let result = engine.run_tidy(&req, &params, &status.cancel).await;
            let mut map = engine.tidy.lock();
            if let Some(st) = map.get_mut(&mount) {
                st.time_finished = engine.now();
                match result {
                    Ok((certs, revoked, cur_certs, cur_revoked)) => {
                        st.cert_store_deleted_count = certs;
                        st.revoked_cert_deleted_count = revoked;
                        st.current_cert_store_count = cur_certs;
                        st.current_revoked_cert_count = cur_revoked;
                        if status.cancel.load(Ordering::SeqCst) {
                            st.state = "Cancelled".into();
                            st.message = "Tidy operation cancelled".into();
                        } else {
                            st.state = "Finished".into();
                            st.message = "Tidy operation successfully completed".into();
                        }
                    }
                    Err(e) => {
                        st.state = "Error".into();
                        st.error = e.to_string();
                    }
                }
            }
        });
        Ok(())
    }

    /// One tidy pass: (certificates deleted, revocations deleted, certificates left,
    /// revocations left).
    async fn run_tidy(
        &self,
        req: &Request,
        p: &TidyParams,
        cancel: &std::sync::atomic::AtomicBool,
    ) -> Result<(u64, u64, u64, u64)> {
        let s = &*req.storage;
        let now = self.now();
        let cutoff = now - p.safety_buffer as i64;
        let (mut certs_deleted, mut revoked_deleted, mut certs_left, mut revoked_left) =
            (0, 0, 0, 0);
        let mut removals: HashMap<String, HashSet<String>> = HashMap::new();
        let mut orphans: HashSet<String> = HashSet::new();
        if p.tidy_revoked_certs || p.tidy_revoked_cert_issuer_associations {
            let mut expired: Vec<(String, Option<Vec<u8>>)> = Vec::new();
            let mut repairs: HashMap<String, Vec<(Vec<u8>, RevokedEntry, String)>> = HashMap::new();
            for k in s.list("revoked/").await? {
                if cancel.load(Ordering::SeqCst) {
                    break;
                }
                let Some(e) = get_json::<RevokedEntry>(s, &format!("revoked/{k}")).await? else {
                    continue;
                };
                let serial = x509::parse_serial(&k);
                if p.tidy_revoked_certs && e.not_after < cutoff {
                    expired.push((k.clone(), serial.clone()));
                    if let Some(serial) = serial {
                        // The CRL it is listed on; entries from before CRLs were shared name
                        // only their issuer, and one whose issuer is gone is looked for on
                        // every CRL.
                        let crl = if !e.crl_id.is_empty() {
                            Some(e.crl_id.clone())
                        } else {
                            self.load_issuer(req, &e.issuer_id)
                                .await
                                .ok()
                                .map(|i| i.crl_id.clone())
                        };
                        match crl {
                            Some(id) => removals.entry(id).or_default(),
                            None => &mut orphans,
                        }
                        .insert(hex::encode(&serial));
                    }
                    revoked_deleted += 1;
                } else {
                    revoked_left += 1;
                    // Check the revocation against the certificate: recorded against the
                    // issuer that signed it, and listed on that issuer's CRL (a revocation an
                    // older version half-wrote before crashing is otherwise never listed).
                    if p.tidy_revoked_cert_issuer_associations
                        && let Some(serial) = serial
                        && let Some(der) = store::get_cert(s, &serial).await?
                        && let Ok(info) = x509::parse_cert(&der)
                        && let Some(issuer) = self.issuer_of(req, &info, true).await?
                        && issuer.key.is_some()
                    {
                        repairs.entry(issuer.crl_id.clone()).or_default().push((
                            serial,
                            e,
                            issuer.entry.id.clone(),
                        ));
                    }
                }
            }
            // Off the CRLs first, then out of storage: a crash in between leaves expired
            // entries the next tidy removes, never a CRL listing a serial no entry explains.
            if !orphans.is_empty() {
                for id in s.list("crl-state/").await? {
                    if !id.ends_with('/') {
                        removals
                            .entry(id)
                            .or_default()
                            .extend(orphans.iter().cloned());
                    }
                }
            }
            for (crl, serials) in removals.drain() {
                self.remove_from_index(req, &crl, &serials).await?;
            }
            for (k, serial) in expired {
                let mut ops = vec![(format!("revoked/{k}"), None)];
                if let Some(serial) = serial {
                    ops.extend(store::cert_delete_ops(&serial));
                }
                s.transaction(ops).await?;
            }
            for (crl, found) in repairs {
                let group = self.crl_group(req, &crl).await?;
                self.repair_revocations(req, &group, found).await?;
            }
        }
        if p.tidy_cert_store {
            let issuer_serials: HashSet<String> = crate::issuers::list_issuer_entries(s)
                .await?
                .into_iter()
                .map(|e| e.serial_number)
                .collect();
            for shard in s.list("certs/").await? {
                if !shard.ends_with('/') {
                    continue;
                }
                for k in s.list(&format!("certs/{shard}")).await? {
                    if cancel.load(Ordering::SeqCst) {
                        break;
                    }
                    let path = format!("certs/{shard}{k}");
                    let Some(der) = s.get(&path).await? else {
                        continue;
                    };
                    let Ok(info) = x509::parse_cert(&der) else {
                        continue;
                    };
                    let colon = x509::serial_colon(&info.serial);
                    // Issuer certificates stay while their issuer exists; revoked ones wait
                    // for tidy_revoked_certs.
                    let revoked = s.get(&format!("revoked/{k}")).await?.is_some();
                    if info.not_after < cutoff && !issuer_serials.contains(&colon) && !revoked {
                        store::delete_cert(s, &info.serial).await?;
                        certs_deleted += 1;
                    } else {
                        certs_left += 1;
                    }
                }
            }
        }
        Ok((certs_deleted, revoked_deleted, certs_left, revoked_left))
    }

    pub(crate) async fn tidy_status(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        let st = self
            .tidy
            .lock()
            .get(&self.mount_id(&req))
            .cloned()
            .unwrap_or_default();
        Ok(Some(Response::json(st.json())))
    }

    pub(crate) async fn tidy_cancel(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        let st = {
            let map = self.tidy.lock();
            map.get(&self.mount_id(&req)).cloned()
        };
        match st {
            Some(st) if st.state == "Running" => {
                st.cancel.store(true, Ordering::SeqCst);
                Ok(Some(Response::json(st.json())))
            }
            _ => Err(bad("no tidy operation is running")),
        }
    }

    pub(crate) async fn auto_tidy_read(
        self: Arc<Self>,
        req: Request,
        _f: Fields,
    ) -> Result<Option<Response>> {
        let c: AutoTidyConfig = store::load_or_default(&*req.storage, "config/auto-tidy").await?;
        Ok(Some(Response::json(auto_tidy_json(&c))))
    }

    pub(crate) async fn auto_tidy_write(
        self: Arc<Self>,
        req: Request,
        f: Fields,
    ) -> Result<Option<Response>> {
        let s = &*req.storage;
        let mut c: AutoTidyConfig = store::load_or_default(s, "config/auto-tidy").await?;
        let input: AutoTidyInput = f.input();
        if let Some(on) = input.enabled {
            c.enabled = on;
        }
        if let Some(d) = input.interval_duration {
            c.interval_duration = d.as_secs();
        }
        for (sent, target) in [
            (input.tidy_cert_store, &mut c.tidy_cert_store),
            (input.tidy_revoked_certs, &mut c.tidy_revoked_certs),
            (
                input.tidy_revoked_cert_issuer_associations,
                &mut c.tidy_revoked_cert_issuer_associations,
            ),
            (input.tidy_expired_issuers, &mut c.tidy_expired_issuers),
        ] {
            if let Some(on) = sent {
                *target = on;
            }
        }
        if let Some(d) = input.safety_buffer {
            c.safety_buffer = d.as_secs();
        }
        if let Some(d) = input.issuer_safety_buffer {
            c.issuer_safety_buffer = d.as_secs();
        }
        if c.enabled && !c.tidy_cert_store && !c.tidy_revoked_certs {
            return Err(bad(
                "auto-tidy is enabled but no tidy operation is: set tidy_cert_store or tidy_revoked_certs",
            ));
        }
        if c.interval_duration == 0 {
            return Err(bad("interval_duration must be greater than zero"));
        }
        store::save(s, "config/auto-tidy", &c).await?;
        self.auto_tidy
            .lock()
            .insert(self.mount_id(&req), (c.clone(), self.now()));
        Ok(Some(Response::json(auto_tidy_json(&c))))
    }

    /// Starts an automatic tidy when the mount's interval has passed.
    /// Starts a tidy with `config/auto-tidy`'s settings when its interval has passed at `now`
    /// (the core's periodic tick).
    pub(crate) async fn maybe_auto_tidy(self: &Arc<Self>, req: &Request, now: i64) {
        let mount = self.mount_id(req);
        let known = self.auto_tidy.lock().get(&mount).cloned();
        let (cfg, last) = match known {
            Some(x) => x,
            None => {
                let Ok(cfg) =
                    store::load_or_default::<AutoTidyConfig>(&*req.storage, "config/auto-tidy")
                        .await
                else {
                    return;
                };
                self.auto_tidy
                    .lock()
                    .insert(mount.clone(), (cfg.clone(), now));
                (cfg, now)
            }
        };
        if !cfg.enabled || now < last + cfg.interval_duration as i64 {
            return;
        }
        self.auto_tidy.lock().insert(mount, (cfg.clone(), now));
        let _ = self.start_tidy(
            req,
            TidyParams {
                tidy_cert_store: cfg.tidy_cert_store,
                tidy_revoked_certs: cfg.tidy_revoked_certs,
                tidy_revoked_cert_issuer_associations: cfg.tidy_revoked_cert_issuer_associations,
                tidy_expired_issuers: cfg.tidy_expired_issuers,
                safety_buffer: cfg.safety_buffer,
                issuer_safety_buffer: cfg.issuer_safety_buffer,
            },
        );
    }
}

fn auto_tidy_json(c: &AutoTidyConfig) -> Value {
    json!({
        "enabled": c.enabled,
        "interval_duration": c.interval_duration,
        "tidy_cert_store": c.tidy_cert_store,
        "tidy_revoked_certs": c.tidy_revoked_certs,
        "tidy_revoked_cert_issuer_associations": c.tidy_revoked_cert_issuer_associations,
        "tidy_expired_issuers": c.tidy_expired_issuers,
        "safety_buffer": c.safety_buffer,
        "issuer_safety_buffer": c.issuer_safety_buffer,
        "pause_duration": c.pause_duration,
    })
}
