//! Rekey (`sys/rekey/*`) and root-token generation (`sys/generate-root/*`) on the core.
//! Both collect unseal-key shares behind a nonce until the threshold is met, then verify the
//! combined key against the stored root key before acting.

use serde_json::{Value, json};
use tresor_physical::Op;
use tresor_seal::{otp, pgp};
use zeroize::Zeroizing;

use crate::barrier::Key;
use crate::core::Core;
use crate::core::Unsealed;
use crate::error::CoreError;
use crate::seal::{
    self, GenerateRoot, PendingRekey, Progress, REKEY_BACKUP_PATH, Rekey, RekeyRequest,
    SEAL_CONFIG_PATH, SealConfig,
};

fn b64(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn not_init() -> CoreError {
    CoreError::InvalidRequest("server is not yet initialized".into())
}

impl Core {
    async fn threshold(&self) -> Result<SealConfig, CoreError> {
        self.seal_config().await?.ok_or_else(not_init)
    }

    /// `GET sys/rekey/init`.
    pub async fn rekey_status(&self) -> Result<Value, CoreError> {
        let cfg = self.threshold().await?;
        let r = self.0.rekey.lock().await;
        Ok(rekey_status_json(r.as_ref(), cfg.secret_threshold))
    }

    /// `PUT sys/rekey/init`.
    pub async fn rekey_init(&self, req: RekeyRequest) -> Result<Value, CoreError> {
        let cfg = self.threshold().await?;
        self.unsealed()?;
        let mut r = self.0.rekey.lock().await;
        if r.is_some() {
            return Err(CoreError::InvalidRequest(
                "rekey already in progress".into(),
            ));
        }
        if req.backup && req.pgp_keys.is_empty() {
            return Err(CoreError::InvalidRequest(
                "cannot request a backup of the new keys without providing PGP keys for encryption"
                    .into(),
            ));
        }
        seal::validate_shares(req.secret_shares, req.secret_threshold, &req.pgp_keys).map_err(
            |e| CoreError::InvalidRequest(format!("invalid rekey seal configuration: {e}")),
        )?;
        let mut fingerprints = Vec::new();
        for k in &req.pgp_keys {
            fingerprints.push(
                pgp::fingerprint(k)
                    .map_err(|e| CoreError::InvalidRequest(format!("invalid PGP key: {e}")))?,
            );
        }
        *r = Some(Rekey {
            progress: Progress {
                nonce: uuid::Uuid::new_v4().to_string(),
                shares: Vec::new(),
            },
            secret_shares: req.secret_shares,
            secret_threshold: req.secret_threshold,
            pgp_keys: req.pgp_keys,
            backup: req.backup,
            fingerprints,
            require_verification: req.require_verification,
            pending: None,
        });
        Ok(rekey_status_json(r.as_ref(), cfg.secret_threshold))
    }

    pub async fn rekey_cancel(&self) -> Result<(), CoreError> {
        *self.0.rekey.lock().await = None;
        Ok(())
    }

    /// `PUT sys/rekey/update`: one current share. Once the threshold is met the new shares
    /// are made and returned; without verification the switch commits first, with it the
    /// switch waits for `sys/rekey/verify`.
    pub async fn rekey_update(&self, share: &str, nonce: &str) -> Result<Value, CoreError> {
        let cfg = self.threshold().await?;
        let u = self.unsealed()?;
        let mut guard = self.0.rekey.lock().await;
        let r = guard
            .as_mut()
            .ok_or_else(|| CoreError::InvalidRequest("no rekey in progress".into()))?;
        if let Some(p) = &r.pending {
            return Err(CoreError::InvalidRequest(format!(
                "the new shares of this rekey were already made and are waiting to be verified at sys/rekey/verify (verification nonce {})",
                p.progress.nonce
            )));
        }
        if nonce != r.progress.nonce {
            return Err(CoreError::InvalidRequest(format!(
                "incorrect nonce supplied; nonce for this rekey operation is {}",
                r.progress.nonce
            )));
        }
        r.progress.add(seal::decode_share(share)?)?;
        if r.progress.shares.len() < cfg.secret_threshold {
            return Ok(rekey_status_json(Some(r), cfg.secret_threshold));
        }
        let shares = std::mem::take(&mut r.progress.shares);
        let key = seal::combine(cfg.secret_threshold, &shares)?;
        self.verify_unseal_key(&key).await?;
        // Everything the switch needs is prepared before anything is written: the new key, its
        // shares (PGP-encrypted when asked) and the backup. The switch itself is one physical
        // commit (see `commit_rekey`), made now, or with verification only once the new
        // shares have been proven; until then the old shares stay valid.
        let new_key = Key::generate();
        let (keys, fps) =
            seal::make_shares(&new_key, r.secret_shares, r.secret_threshold, &r.pgp_keys)?;
        let nonce = r.progress.nonce.clone();
        let backup = if r.backup {
            Some(backup_document(&nonce, &fps, &keys)?)
        } else {
            None
        };
        let mut out = json!({
            "complete": true,
            "keys": keys.iter().map(|k| hex::encode(&k[..])).collect::<Vec<_>>(),
            "keys_base64": keys.iter().map(|k| b64(&k[..])).collect::<Vec<_>>(),
            "nonce": nonce,
            "pgp_fingerprints": if fps.is_empty() { Value::Null } else { json!(fps) },
            "backup": r.backup,
            "verification_required": r.require_verification,
        });
        if r.require_verification {
            let verification_nonce = uuid::Uuid::new_v4().to_string();
            out["verification_nonce"] = json!(verification_nonce);
            r.pending = Some(PendingRekey {
                key: new_key,
                progress: Progress {
                    nonce: verification_nonce,
                    shares: Vec::new(),
                },
                backup,
            });
            return Ok(out);
        }
        self.commit_rekey(&u, r, &new_key, backup.as_deref())
            .await?;
        *guard = None;
        Ok(out)
    }

    /// The switch to a new unseal key: the root key re-sealed under it, the new seal
    /// configuration and the backup land in one physical commit, so a failure or crash leaves
    /// either the old shares valid and the old configuration in place, or both new.
    async fn commit_rekey(
        &self,
        u: &Unsealed,
        r: &Rekey,
        new_key: &Key,
        backup: Option<&[u8]>,
    ) -> Result<(), CoreError> {
        let new_cfg = SealConfig {
            version: 1,
            kind: "shamir".into(),
            secret_shares: r.secret_shares,
            secret_threshold: r.secret_threshold,
            pgp_keys: r.pgp_keys.clone(),
        };
        let mut ops = vec![
            u.barrier.root_key_op(new_key),
            Op::Put(
                SEAL_CONFIG_PATH.to_owned(),
                serde_json::to_vec(&new_cfg).map_err(|e| CoreError::Internal(e.to_string()))?,
            ),
        ];
        if let Some(bytes) = backup {
            ops.push(u.barrier.sealed_op(REKEY_BACKUP_PATH, bytes).await?);
        }
        u.barrier.physical().transaction(ops).await.map_err(|e| {
            CoreError::Internal(format!(
                "rekey could not be stored, the current unseal keys remain valid: {e}"
            ))
        })?;
        self.cache_seal_config(new_cfg);
        Ok(())
    }

    /// `GET sys/rekey/verify`.
    pub async fn rekey_verify_status(&self) -> Result<Value, CoreError> {
        self.threshold().await?;
        let guard = self.0.rekey.lock().await;
        let r = guard.as_ref().ok_or_else(no_rekey)?;
        Ok(verify_status_json(r))
    }

    /// `DELETE sys/rekey/verify`: forgets the new shares given so far and starts the
    /// verification again under a new nonce; the rekey itself (and its new key) stays.
    pub async fn rekey_verify_cancel(&self) -> Result<Value, CoreError> {
        self.threshold().await?;
        let mut guard = self.0.rekey.lock().await;
        let r = guard.as_mut().ok_or_else(no_rekey)?;
        if let Some(p) = r.pending.as_mut() {
            p.progress = Progress {
                nonce: uuid::Uuid::new_v4().to_string(),
                shares: Vec::new(),
            };
        }
        Ok(verify_status_json(r))
    }

    /// `PUT sys/rekey/verify`: one NEW share. When a threshold of them combines to the new
    /// key, the switch commits; shares that combine to anything else restart the
    /// verification under a new nonce.
    pub async fn rekey_verify_update(&self, share: &str, nonce: &str) -> Result<Value, CoreError> {
        self.threshold().await?;
        let u = self.unsealed()?;
        let mut guard = self.0.rekey.lock().await;
        let r = guard
            .as_mut()
            .filter(|r| r.pending.is_some())
            .ok_or_else(|| CoreError::InvalidRequest("no rekey verification in progress".into()))?;
        let threshold = r.secret_threshold;
        let p = r.pending.as_mut().expect("checked above");
        if nonce != p.progress.nonce {
            return Err(CoreError::InvalidRequest(format!(
                "incorrect nonce supplied; nonce for this verify operation is {}",
                p.progress.nonce
            )));
        }
        p.progress.add(seal::decode_share(share)?)?;
        if p.progress.shares.len() < threshold {
            return Ok(verify_status_json(r));
        }
        let shares = std::mem::take(&mut p.progress.shares);
        let proven = seal::combine(threshold, &shares)
            .is_ok_and(|k| tresor_seal::token::ct_eq(&k.0[..], &p.key.0[..]));
        if !proven {
            p.progress.nonce = uuid::Uuid::new_v4().to_string();
            return Err(CoreError::InvalidRequest(
                "rekey verification failed: the shares given do not make the new key; verification starts again with a new nonce".into(),
            ));
        }
        let pending = r.pending.take().expect("checked above");
        let nonce = pending.progress.nonce.clone();
        if let Err(e) = self
            .commit_rekey(&u, r, &pending.key, pending.backup.as_deref())
            .await
        {
            // Nothing was written: the proven key stays pending, to be verified again.
            r.pending = Some(PendingRekey {
                progress: Progress {
                    nonce: uuid::Uuid::new_v4().to_string(),
                    shares: Vec::new(),
                },
                ..pending
            });
            return Err(e);
        }
        *guard = None;
        Ok(json!({"nonce": nonce, "complete": true}))
    }

    /// `GET sys/generate-root/attempt`.
    pub async fn generate_root_status(&self) -> Result<Value, CoreError> {
        let cfg = self.threshold().await?;
        // Root generation needs an unsealed server, and so does asking about it (as in Vault).
        self.unsealed()?;
        let g = self.0.genroot.lock().await;
        Ok(genroot_json(
            g.as_ref(),
            cfg.secret_threshold,
            "",
            "",
            false,
        ))
    }

    /// `PUT sys/generate-root/attempt`: starts an attempt; generates the OTP when none given.
    pub async fn generate_root_init(
        &self,
        otp_in: &str,
        pgp_key: &str,
    ) -> Result<Value, CoreError> {
        let cfg = self.threshold().await?;
        // As in Vault: a root token can only be generated (and stored) while unsealed.
        self.unsealed()?;
        let mut g = self.0.genroot.lock().await;
        if g.is_some() {
            return Err(CoreError::InvalidRequest(
                "root generation already in progress".into(),
            ));
        }
        let (otp_value, generated, pgp_key, fp) = if !pgp_key.is_empty() {
            let fp = pgp::fingerprint(pgp_key)
                .map_err(|e| CoreError::InvalidRequest(format!("invalid PGP key: {e}")))?;
            (None, String::new(), Some(pgp_key.to_owned()), fp)
        } else if !otp_in.is_empty() {
            if otp_in.len() != otp::OTP_LENGTH {
                return Err(CoreError::InvalidRequest(format!(
                    "OTP string is wrong length: expected {} characters",
                    otp::OTP_LENGTH
                )));
            }
            (
                Some(Zeroizing::new(otp_in.to_owned())),
                String::new(),
                None,
                String::new(),
            )
        } else {
            let o = otp::generate_otp(otp::OTP_LENGTH);
            (Some(Zeroizing::new(o.clone())), o, None, String::new())
        };
        *g = Some(GenerateRoot {
            progress: Progress {
                nonce: uuid::Uuid::new_v4().to_string(),
                shares: Vec::new(),
            },
            otp: otp_value,
            pgp_key,
            pgp_fingerprint: fp,
        });
        Ok(genroot_json(
            g.as_ref(),
            cfg.secret_threshold,
            &generated,
            "",
            false,
        ))
    }

    pub async fn generate_root_cancel(&self) -> Result<(), CoreError> {
        *self.0.genroot.lock().await = None;
        Ok(())
    }

    /// `PUT sys/generate-root/update`.
    pub async fn generate_root_update(&self, share: &str, nonce: &str) -> Result<Value, CoreError> {
        let cfg = self.threshold().await?;
        self.unsealed()?;
        let mut guard = self.0.genroot.lock().await;
        let g = guard
            .as_mut()
            .ok_or_else(|| CoreError::InvalidRequest("no root generation in progress".into()))?;
        if nonce != g.progress.nonce {
            return Err(CoreError::InvalidRequest(format!(
                "incorrect nonce supplied; nonce for this root generation operation is {}",
                g.progress.nonce
            )));
        }
        g.progress.add(seal::decode_share(share)?)?;
        if g.progress.shares.len() < cfg.secret_threshold {
            return Ok(genroot_json(Some(g), cfg.secret_threshold, "", "", false));
        }
        let shares = std::mem::take(&mut g.progress.shares);
        let key = seal::combine(cfg.secret_threshold, &shares)?;
        if let Err(e) = self.verify_unseal_key(&key).await {
            *guard = None;
            return Err(e);
        }
        let u = self.unsealed()?;
        let token = self.create_root_token(&u, None).await?;
        let encoded = seal::encode_root_token(g, &token)?;
        let out = genroot_json(Some(g), cfg.secret_threshold, "", &encoded, true);
        *guard = None;
        Ok(out)
    }

    /// `GET sys/rekey/backup`.
    pub async fn rekey_backup(&self) -> Result<Option<Value>, CoreError> {
        let u = self.unsealed()?;
        match u.barrier.get(REKEY_BACKUP_PATH).await? {
            None => Ok(None),
            Some(b) => Ok(Some(
                serde_json::from_slice(&b).map_err(|e| CoreError::Internal(e.to_string()))?,
            )),
        }
    }

    pub async fn rekey_backup_delete(&self) -> Result<(), CoreError> {
        let u = self.unsealed()?;
        u.barrier.delete(REKEY_BACKUP_PATH).await
    }
}

fn rekey_status_json(r: Option<&Rekey>, required: usize) -> Value {
    match r {
        None => {
            json!({"nonce": "", "started": false, "t": 0, "n": 0, "progress": 0, "required": required, "pgp_fingerprints": null, "backup": false, "verification_required": false})
        }
        Some(r) => {
            let mut v = json!({
                "nonce": r.progress.nonce,
                "started": true,
                "t": r.secret_threshold,
                "n": r.secret_shares,
                "progress": r.progress.shares.len(),
                "required": required,
                "pgp_fingerprints": if r.fingerprints.is_empty() { Value::Null } else { json!(r.fingerprints) },
                "backup": r.backup,
                "verification_required": r.require_verification,
            });
            if let Some(p) = &r.pending {
                v["verification_nonce"] = json!(p.progress.nonce);
            }
            v
        }
    }
}

/// `sys/rekey/verify`'s status: the new configuration and the verification's progress.
fn verify_status_json(r: &Rekey) -> Value {
    let (nonce, started, progress) = match &r.pending {
        Some(p) => (p.progress.nonce.as_str(), true, p.progress.shares.len()),
        None => ("", false, 0),
    };
    json!({
        "nonce": nonce,
        "started": started,
        "t": r.secret_threshold,
        "n": r.secret_shares,
        "progress": progress,
    })
}

fn no_rekey() -> CoreError {
    CoreError::InvalidRequest("no rekey configuration found".into())
}

/// The `sys/rekey/backup` document: the (PGP-encrypted) new shares by key fingerprint.
fn backup_document(
    nonce: &str,
    fps: &[String],
    keys: &[Zeroizing<Vec<u8>>],
) -> Result<Vec<u8>, CoreError> {
    let mut by_fp = serde_json::Map::new();
    let mut by_fp64 = serde_json::Map::new();
    for (fp, k) in fps.iter().zip(keys) {
        by_fp
            .entry(fp.clone())
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("array")
            .push(json!(hex::encode(&k[..])));
        by_fp64
            .entry(fp.clone())
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("array")
            .push(json!(b64(&k[..])));
    }
    let backup = json!({"nonce": nonce, "keys": by_fp, "keys_base64": by_fp64});
    serde_json::to_vec(&backup).map_err(|e| CoreError::Internal(e.to_string()))
}

fn genroot_json(
    g: Option<&GenerateRoot>,
    required: usize,
    otp: &str,
    encoded: &str,
    complete: bool,
) -> Value {
    json!({
        "nonce": g.map(|g| g.progress.nonce.clone()).unwrap_or_default(),
        "started": g.is_some(),
        "progress": if complete { required } else { g.map(|g| g.progress.shares.len()).unwrap_or(0) },
        "required": required,
        "complete": complete,
        "encoded_token": encoded,
        "encoded_root_token": encoded,
        "pgp_fingerprint": g.map(|g| g.pgp_fingerprint.clone()).unwrap_or_default(),
        "otp": otp,
        "otp_length": tresor_seal::otp::OTP_LENGTH,
    })
}
