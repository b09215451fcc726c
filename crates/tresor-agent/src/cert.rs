//! The `certificate` block (design-next §6): one issuance whose parts go to separate files.
//!
//! - One `pki/issue/:role` call per rotation (or, in CSR mode, a key made here and only the
//!   CSR sent to `pki/sign/:role`: the key never leaves the host).
//! - The files are written atomically, key first, then certificate, CA and chain, each with
//!   its owner, group and mode; they are written only when a new serial was issued, so an
//!   application watching them never reloads for nothing.
//! - At start the files on disk are read back: when the certificate parses, the key matches
//!   it, the common name is the configured one and it is not yet within `renew_before` of
//!   its end, it is reused. A restart, or a new login, never re-issues.
//! - The reload command runs once per rotation, after every file is in place.
//! - `POST /agent/v1/certificate/NAME/rotate` on the agent's listener forces a rotation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tresor_client::{Client, Method, Request, TokenChoice};
use zeroize::Zeroizing;

use crate::auth::Token;
use crate::backoff::Backoff;
use crate::config::{Certificate, FileSpec, RenewBefore};
use crate::files;
use crate::x509::{self, CertInfo};

/// Rotation requests by certificate name, shared with the listener's endpoint.
#[derive(Debug, Default)]
pub struct Rotations {
    by_name: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Rotations {
    fn register(&self, name: &str) -> Arc<Notify> {
        let mut m = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(name.to_string()).or_default().clone()
    }

    /// Asks certificate `name` to rotate now; false when there is no such certificate.
    pub fn force(&self, name: &str) -> bool {
        let m = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        match m.get(name) {
            Some(n) => {
                n.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A certificate block with what was found on disk at start.
#[derive(Debug)]
pub struct Prepared {
    cfg: Certificate,
    on_disk: Option<CertInfo>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Reads each block's files back and checks that their directories exist.
pub fn prepare(certs: &[Certificate]) -> Result<Vec<Prepared>, String> {
    certs
        .iter()
        .map(|c| {
            for f in files_of(c) {
                let dir = f.path.parent().filter(|d| !d.as_os_str().is_empty());
                if let Some(d) = dir
                    && !d.is_dir()
                {
                    return Err(format!(
                        "certificate {:?}: the directory of {} does not exist",
                        c.name,
                        f.path.display()
                    ));
                }
            }
            let on_disk = read_state(c);
            match &on_disk {
                Some(s) => {
                    tracing::info!(certificate = %c.name, serial = %s.serial, "found a valid certificate on disk")
                }
                None => tracing::info!(certificate = %c.name, "no usable certificate on disk"),
            }
            Ok(Prepared {
                cfg: c.clone(),
                on_disk,
            })
        })
        .collect()
}

fn files_of(c: &Certificate) -> Vec<&FileSpec> {
    let mut v = vec![&c.key_file, &c.cert_file];
    v.extend(c.ca_file.iter());
    v.extend(c.chain_file.iter());
    v
}

/// The certificate on disk, when every configured file is there, the key matches and the
/// common name is the configured one.
fn read_state(c: &Certificate) -> Option<CertInfo> {
    let cert = std::fs::read_to_string(&c.cert_file.path).ok()?;
    let key = Zeroizing::new(std::fs::read_to_string(&c.key_file.path).ok()?);
    let info = x509::parse_cert(&cert).ok()?;
    if !x509::key_matches(&info, &key) {
        tracing::warn!(certificate = %c.name, "the key on disk does not match the certificate");
        return None;
    }
    if info.common_name.as_deref() != Some(c.common_name.as_str()) {
        return None;
    }
    for f in c.ca_file.iter().chain(c.chain_file.iter()) {
        if !f.path.is_file() {
            return None;
        }
    }
    Some(info)
}

/// When `info` is due for renewal (Unix seconds).
pub fn renew_at(info: &CertInfo, rb: RenewBefore) -> i64 {
    let life = (info.not_after - info.not_before).max(1);
    let before = match rb {
        RenewBefore::Duration(d) => d.as_secs() as i64,
        RenewBefore::Fraction(f) => (life as f64 * f) as i64,
    };
    let at = info.not_after - before;
    if at <= info.not_before {
        // renew_before is longer than the lifetime: renew at two thirds instead of looping.
        info.not_before + life * 2 / 3
    } else {
        at
    }
}

/// What one issuance returned.
struct Issued {
    certificate: String,
    key: Zeroizing<String>,
    issuing_ca: String,
    ca_chain: Vec<String>,
}

async fn issue(client: &Client, c: &Certificate, token: &Token) -> Result<Issued, String> {
    let mut body = json!({ "common_name": c.common_name });
    if !c.alt_names.is_empty() {
        body["alt_names"] = json!(c.alt_names.join(","));
    }
    if !c.ip_sans.is_empty() {
        body["ip_sans"] = json!(c.ip_sans.join(","));
    }
    if !c.uri_sans.is_empty() {
        body["uri_sans"] = json!(c.uri_sans.join(","));
    }
    if let Some(t) = &c.ttl {
        body["ttl"] = json!(t);
    }
    let (path, local_key) = match c.csr {
        None => (format!("{}/issue/{}", c.mount, c.role), None),
        Some(ty) => {
            let (kp, pem) = x509::generate_key(ty)?;
            body["csr"] = json!(x509::csr_pem(
                &kp,
                &c.common_name,
                &c.alt_names,
                &c.ip_sans,
                &c.uri_sans
            )?);
            (format!("{}/sign/{}", c.mount, c.role), Some(pem))
        }
    };
    let req = Request::new(Method::POST, &path)
        .json(body)
        .token(TokenChoice::Override(Zeroizing::new(token.to_string())))
        .no_wrap();
    let s = client
        .secret(&req)
        .await
        .map_err(|e| format!("{path}: {e}"))?
        .ok_or_else(|| format!("{path}: empty response"))?;
    let mut data = s.data.unwrap_or_default();
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    let certificate = text(data.get("certificate"));
    if certificate.is_empty() {
        return Err(format!("{path}: the response has no certificate"));
    }
    let key = match local_key {
        Some(k) => k,
        None => {
            let k = Zeroizing::new(text(data.get("private_key")));
            if let Some(Value::String(s)) = data.get_mut("private_key") {
                zeroize::Zeroize::zeroize(s);
            }
            if k.is_empty() {
                return Err(format!("{path}: the response has no private_key"));
            }
            k
        }
    };
    let ca_chain = data
        .get("ca_chain")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(Issued {
        certificate,
        key,
        issuing_ca: text(data.get("issuing_ca")),
        ca_chain,
    })
}

fn with_newline(s: &str) -> String {
    let t = s.trim_end();
    format!("{t}\n")
}

/// Writes the parts, key first; returns the new certificate's info.
fn write_files(c: &Certificate, i: &Issued) -> Result<CertInfo, String> {
    let info = x509::parse_cert(&i.certificate)?;
    if !x509::key_matches(&info, &i.key) {
        return Err("the issued key does not match the issued certificate".to_string());
    }
    let write = |f: &FileSpec, data: &[u8]| {
        files::write_atomic(&f.path, data, f.mode, f.owner, f.group)
            .map_err(|e| format!("writing {}: {e}", f.path.display()))
    };
    let key = Zeroizing::new(with_newline(&i.key));
    write(&c.key_file, key.as_bytes())?;
    write(&c.cert_file, with_newline(&i.certificate).as_bytes())?;
    if let Some(f) = &c.ca_file {
        let ca = if i.issuing_ca.is_empty() {
            i.ca_chain.first().cloned().unwrap_or_default()
        } else {
            i.issuing_ca.clone()
        };
        write(f, with_newline(&ca).as_bytes())?;
    }
    if let Some(f) = &c.chain_file {
        let mut chain = with_newline(&i.certificate);
        let rest: Vec<&String> = if i.ca_chain.is_empty() {
            vec![&i.issuing_ca]
        } else {
            i.ca_chain.iter().collect()
        };
        for part in rest {
            chain.push_str(&with_newline(part));
        }
        write(f, chain.as_bytes())?;
    }
    Ok(info)
}

/// Runs the reload command under its timeout.
pub async fn run_command(command: &[String], timeout: Duration, what: &str) {
    let Some((prog, args)) = command.split_first() else {
        return;
    };
    let child = tokio::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(what, error = %e, "cannot start the command");
            return;
        }
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(st)) if st.success() => tracing::info!(what, "command ran"),
        Ok(Ok(st)) => tracing::error!(what, status = %st, "command failed"),
        Ok(Err(e)) => tracing::error!(what, error = %e, "command failed"),
        Err(_) => {
            let _ = child.kill().await;
            tracing::error!(what, ?timeout, "command timed out and was killed");
        }
    }
}

async fn current_token(rx: &mut watch::Receiver<Option<Token>>) -> Option<Token> {
    let t = rx.wait_for(Option::is_some).await.ok()?;
    t.clone()
}

/// Keeps one certificate block's files fresh, forever.
pub async fn run(
    client: Client,
    p: Prepared,
    mut rx: watch::Receiver<Option<Token>>,
    rotations: Arc<Rotations>,
) {
    let c = p.cfg;
    let forced = rotations.register(&c.name);
    let mut state = p.on_disk;
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
    loop {
        if let Some(s) = &state {
            let wait = (renew_at(s, c.renew_before) - now()).max(0) as u64;
            tracing::info!(certificate = %c.name, serial = %s.serial, renew_in_secs = wait, "certificate valid");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(wait)) => {}
                _ = forced.notified() => {
                    tracing::info!(certificate = %c.name, "rotation requested");
                }
            }
        }
        let Some(token) = current_token(&mut rx).await else {
            return;
        };
        let result = match issue(&client, &c, &token).await {
            Ok(i) => write_files(&c, &i),
            Err(e) => Err(e),
        };
        match result {
            Ok(info) => {
                backoff.reset();
                tracing::info!(certificate = %c.name, serial = %info.serial, "issued and written");
                state = Some(info);
                if let Some(r) = &c.reload {
                    run_command(
                        &r.command,
                        r.timeout,
                        &format!("reload of certificate {}", c.name),
                    )
                    .await;
                }
            }
            Err(e) => {
                let wait = backoff.next_wait();
                tracing::error!(certificate = %c.name, error = %e, retry_in = ?wait, "issuance failed");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = forced.notified() => {}
                }
                // Keep `state`: a valid certificate on disk stays in use meanwhile; when it
                // is due the loop retries at once.
                if let Some(s) = &state
                    && renew_at(s, c.renew_before) > now()
                {
                    continue;
                }
                state = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(nb: i64, na: i64) -> CertInfo {
        let mut i = x509::parse_cert(TEST_CERT).unwrap();
        i.not_before = nb;
        i.not_after = na;
        i
    }

    const TEST_CERT: &str = include_str!("testdata/leaf.pem");

    #[test]
    fn renewal_times() {
        let i = info(1000, 1000 + 3600);
        assert_eq!(
            renew_at(&i, RenewBefore::Duration(Duration::from_secs(600))),
            4000
        );
        assert_eq!(renew_at(&i, RenewBefore::Fraction(0.25)), 1000 + 2700);
        // A renew_before longer than the lifetime renews at two thirds, not in a loop.
        assert_eq!(
            renew_at(&i, RenewBefore::Duration(Duration::from_secs(7200))),
            1000 + 2400
        );
    }
}
